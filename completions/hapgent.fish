# fish completion for hapgent. Generated from hapgent's settings and command
# tables by docgen; do not edit: cargo run -p hapgent-docgen

# The services of the configuration file: the one -c/--config names on
# the command line, else $HAPGENT_CONFIG, else /etc/hapgent/hapgent.toml.
function _hapgent_services
    set -l config /etc/hapgent/hapgent.toml
    set -q HAPGENT_CONFIG; and set config $HAPGENT_CONFIG
    set -l tokens (commandline -opc)
    for i in (seq 2 (count $tokens))
        if contains -- $tokens[(math $i - 1)] -c --config
            set config $tokens[$i]
        end
    end
    test -r "$config"; or return 0
    sed -n -E 's/^[[:space:]]*\[[[:space:]]*services\.("([^"]+)"|([A-Za-z0-9_-]+))[[:space:]]*\].*/\2\3/p' $config
end

complete -c hapgent -f

# Commands.
complete -c hapgent -n 'not __fish_seen_subcommand_from run check-config reply ctl' -a run -d 'serve agent checks until SIGTERM (the default command)'
complete -c hapgent -n 'not __fish_seen_subcommand_from run check-config reply ctl' -a check-config -d 'print the effective configuration with the source of each value, and exit non-zero if it is invalid'
complete -c hapgent -n 'not __fish_seen_subcommand_from run check-config reply ctl' -a reply -d 'print the reply that would be sent now and exit (one-shot)'
complete -c hapgent -n 'not __fish_seen_subcommand_from run check-config reply ctl' -a ctl -d 'talk to the running agent through its control socket (see CTL VERBS)'

# hapgent ctl's verbs.
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a status -d 'the state served, its version, reply, and probers'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a probers -d 'every load balancer that probed, and its last reply'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a metrics -d 'the Prometheus metrics text'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a wait-seen -d 'wait until all load balancers saw the current state'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a up -d 'set the status UP (replies "up ready")'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a down -d 'set the status DOWN'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a ready -d 'set the status READY (replies "up ready")'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a drain -d 'set the status DRAIN'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a maint -d 'set the status MAINT'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a weight -d 'set the weight in % of HAProxy\'s (none: remove it)'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a maxconn -d 'set the connection limit (none: remove it)'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a description -d 'set the description (none: remove it)'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from status probers metrics wait-seen up down ready drain maint weight maxconn description set' -a set -d 'set several fields at once'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_prev_arg_in weight' -a 'none'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_prev_arg_in maxconn' -a 'none'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_prev_arg_in description' -a 'none'

# Flags.
complete -c hapgent -s c -l config -r -F -d 'configuration file [default: /etc/hapgent/hapgent.toml]'
complete -c hapgent -l ip -x -d 'address(es) to listen on, comma-separated'
complete -c hapgent -l port -x -d 'TCP port'
complete -c hapgent -l state-file -r -F -d 'JSON state file'
complete -c hapgent -l max-connections -x -d 'connections served at once'
complete -c hapgent -l write-timeout -x -d 'deadline to send a reply'
complete -c hapgent -l log-requests -d 'log each probe\'s peer and reply'
complete -c hapgent -l drain-file -r -F -d 'report drain while this file exists'
complete -c hapgent -l maint-file -r -F -d 'report maint while this file exists (wins)'
complete -c hapgent -l cpu-weight -d 'scale the weight by the idle CPU share'
complete -c hapgent -l timeframe -x -d 'CPU sampling window'
complete -c hapgent -l min-weight -x -d 'lowest weight CPU load can bring'
complete -c hapgent -l cpu-smoothing -x -d 'share of the previous sample kept'
complete -c hapgent -l proc-stat -r -F -d 'CPU counters file'
complete -c hapgent -l proc-meminfo -r -F -d 'memory counters file'
complete -c hapgent -l proc-loadavg -r -F -d 'load average file'
complete -c hapgent -l proc-net -r -F -d 'directory of the tcp and tcp6 tables'
complete -c hapgent -l systemd -d 'use listening sockets passed by systemd'
complete -c hapgent -l control-socket -r -F -d 'control socket for hapgent ctl, empty: none'
complete -c hapgent -l control-group -x -d 'group allowed to use the control socket'
complete -c hapgent -l seen-window -x -d 'how recent a probe counts for --wait-seen'
complete -c hapgent -l max-probers -x -d 'load balancers remembered per service'
complete -c hapgent -l payload-timeout -x -d 'with services: wait for agent-send'
complete -c hapgent -l allow -x -d 'sources allowed to probe, comma-separated'
complete -c hapgent -l metrics-listen -x -d 'serve Prometheus metrics'
complete -c hapgent -l maxconn-total -x -d 'connections in all, split across the LBs'
complete -c hapgent -s h -l help -d 'print the usage'
complete -c hapgent -s V -l version -d 'print the version'
complete -c hapgent -n '__fish_seen_subcommand_from reply' -l json -d 'as a JSON object'
complete -c hapgent -n '__fish_seen_subcommand_from ctl' -l json -d 'print the agent\'s answer as JSON'
complete -c hapgent -n '__fish_seen_subcommand_from ctl' -l wait-seen -d 'after a change, wait until every balancer saw it'
complete -c hapgent -n '__fish_seen_subcommand_from ctl' -l timeout -x -d 'how long --wait-seen waits (30s; e.g. 500ms, 2m)'
complete -c hapgent -n '__fish_seen_subcommand_from ctl' -l service -x -a '(_hapgent_services)' -d 'the service to change (default: the default one)'
complete -c hapgent -n '__fish_seen_subcommand_from ctl' -l all -d 'change every service'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from set' -l status -x -a 'UP DOWN READY DRAIN FAIL MAINT STOPPED'
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from set' -l weight -x
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from set' -l maxconn -x
complete -c hapgent -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from set' -l description -x
