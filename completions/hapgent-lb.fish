# fish completion for hapgent-lb. Generated from hapgent-lb's settings and command
# tables by docgen; do not edit: cargo run -p hapgent-docgen

complete -c hapgent-lb -f

# Commands.
complete -c hapgent-lb -n 'not __fish_seen_subcommand_from status wait serve check-config' -a status -d 'every server: status, admin and operational state, weight, sessions, queue, check and agent results'
complete -c hapgent-lb -n 'not __fish_seen_subcommand_from status wait serve check-config' -a wait -d 'poll until every condition holds for every server named (exit 0) or D passes (exit 75)'
complete -c hapgent-lb -n 'not __fish_seen_subcommand_from status wait serve check-config' -a serve -d 'serve the HTTP API that shows and replaces HAProxy\'s configuration, until SIGTERM'
complete -c hapgent-lb -n 'not __fish_seen_subcommand_from status wait serve check-config' -a check-config -d 'print each setting with its source, and exit non-zero if the configuration is invalid'

# Flags.
complete -c hapgent-lb -s c -l config -r -F -d 'configuration file [default: /etc/hapgent-lb/hapgent-lb.toml]'
complete -c hapgent-lb -l haproxy-socket -r -F -d 'HAProxy runtime API socket (level admin)'
complete -c hapgent-lb -l master-socket -r -F -d 'HAProxy master CLI socket (haproxy -W -S PATH); needed by reload = master-socket'
complete -c hapgent-lb -l haproxy-config -r -F -d 'the haproxy.cfg served and replaced'
complete -c hapgent-lb -l haproxy-bin -r -F -d 'haproxy binary used to validate (-c)'
complete -c hapgent-lb -l reload -x -d 'master-socket, systemd or command'
complete -c hapgent-lb -l reload-command -x -d 'argv for reload = command, space-separated (no shell)'
complete -c hapgent-lb -l systemd-unit -x -d 'unit for reload = systemd'
complete -c hapgent-lb -l start-command -x -d 'argv that starts HAProxy if a new configuration took it down (no shell)'
complete -c hapgent-lb -l allow-exec-sections -d 'accept configs that make HAProxy run programs (program, external-check, lua-load...)'
complete -c hapgent-lb -l reload-timeout -x -d 'time for a reload to show up in the runtime API'
complete -c hapgent-lb -l listen-unix -r -F -d 'API Unix socket, mode 0660; empty: none'
complete -c hapgent-lb -l socket-group -x -d 'group allowed on the Unix socket'
complete -c hapgent-lb -l listen-tcp -x -d 'loopback TCP address for the API (needs token_file)'
complete -c hapgent-lb -l token-file -r -F -d 'bearer tokens for TCP, one per line as NAME:TOKEN or TOKEN'
complete -c hapgent-lb -l max-body -x -d 'largest request body'
complete -c hapgent-lb -l header-timeout -x -d 'deadline to receive request headers'
complete -c hapgent-lb -l body-timeout -x -d 'deadline to receive the body after the headers'
complete -c hapgent-lb -l tcp-auth-timeout -x -d 'deadline for a TCP client\'s headers, with its token (at most header_timeout)'
complete -c hapgent-lb -l stop-grace -x -d 'on SIGTERM, time for requests in progress (a config change) to finish'
complete -c hapgent-lb -l poll-interval -x -d 'runtime API polling interval for wait and reloads'
complete -c hapgent-lb -l max-connections -x -d 'API connections served at once, per listener'
complete -c hapgent-lb -s h -l help -d 'print the usage'
complete -c hapgent-lb -s V -l version -d 'print the version'
complete -c hapgent-lb -n '__fish_seen_subcommand_from status' -l backend -x -d 'only this backend'
complete -c hapgent-lb -n '__fish_seen_subcommand_from status' -l json -d 'as JSON'
complete -c hapgent-lb -n '__fish_seen_subcommand_from wait' -l admin -x -a 'ready drain maint' -d 'the administrative state to wait for'
complete -c hapgent-lb -n '__fish_seen_subcommand_from wait' -l op -x -a 'up down starting stopping' -d 'the operational state to wait for'
complete -c hapgent-lb -n '__fish_seen_subcommand_from wait' -l sessions-max -x -d 'wait until each server has at most N sessions'
complete -c hapgent-lb -n '__fish_seen_subcommand_from wait' -l timeout -x -d 'give up after D: 500ms, 90s, 5m (default 60s)'
