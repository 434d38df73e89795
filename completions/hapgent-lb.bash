# bash completion for hapgent-lb. Generated from hapgent-lb's settings and command
# tables by docgen; do not edit: cargo run -p hapgent-docgen

_hapgent_lb() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local config=${HAPGENT_LB_CONFIG:-/etc/hapgent-lb/hapgent-lb.toml}
    local command= verb= word i
    COMPREPLY=()
    # The command and verb typed so far: words that are neither flags nor
    # a flag's value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            -c|--config) config=${COMP_WORDS[i+1]}; i=$((i + 1)) ;;
            --config=*) config=${word#--config=} ;;
            --haproxy-socket|--master-socket|--haproxy-config|--haproxy-bin|--reload|--reload-command|--systemd-unit|--start-command|--reload-timeout|--listen-unix|--socket-group|--listen-tcp|--token-file|--max-body|--header-timeout|--body-timeout|--tcp-auth-timeout|--stop-grace|--poll-interval|--max-connections|--backend|--admin|--op|--sessions-max|--timeout) i=$((i + 1)) ;;
            -*) ;;
            *)
                if [ -z "$command" ]; then
                    command=$word
                fi
                ;;
        esac
    done
    case $prev in
        -c|--config|--haproxy-socket|--master-socket|--haproxy-config|--haproxy-bin|--listen-unix|--token-file)
            compopt -o filenames 2>/dev/null
            local IFS=$'\n'
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --admin)
            COMPREPLY=($(compgen -W "ready drain maint" -- "$cur"))
            return
            ;;
        --op)
            COMPREPLY=($(compgen -W "up down starting stopping" -- "$cur"))
            return
            ;;
        --reload|--reload-command|--systemd-unit|--start-command|--reload-timeout|--socket-group|--listen-tcp|--max-body|--header-timeout|--body-timeout|--tcp-auth-timeout|--stop-grace|--poll-interval|--max-connections|--backend|--sessions-max|--timeout) return ;; # a value to type
    esac
    if [[ $cur == -* ]]; then
        local flags="-c --config --haproxy-socket --master-socket --haproxy-config --haproxy-bin --reload --reload-command --systemd-unit --start-command --allow-exec-sections --reload-timeout --listen-unix --socket-group --listen-tcp --token-file --max-body --header-timeout --body-timeout --tcp-auth-timeout --stop-grace --poll-interval --max-connections -h --help -V --version"
        case $command in
            status) flags+=" --backend --json" ;;
            wait) flags+=" --admin --op --sessions-max --timeout" ;;
        esac
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    if [ -z "$command" ]; then
        COMPREPLY=($(compgen -W "status wait serve check-config" -- "$cur"))
    fi
}
complete -F _hapgent_lb hapgent-lb
