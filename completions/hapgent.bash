# bash completion for hapgent. Generated from hapgent's settings and command
# tables by docgen; do not edit: cargo run -p hapgent-docgen

# The services of the configuration file $1: its [services.NAME] tables.
_hapgent_services() {
    [ -r "$1" ] || return 0
    sed -n -E 's/^[[:space:]]*\[[[:space:]]*services\.("([^"]+)"|([A-Za-z0-9_-]+))[[:space:]]*\].*/\2\3/p' "$1"
}

_hapgent() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local config=${HAPGENT_CONFIG:-/etc/hapgent/hapgent.toml}
    local command= verb= word i
    COMPREPLY=()
    # The command and verb typed so far: words that are neither flags nor
    # a flag's value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            -c|--config) config=${COMP_WORDS[i+1]}; i=$((i + 1)) ;;
            --config=*) config=${word#--config=} ;;
            --ip|--port|--state-file|--max-connections|--write-timeout|--drain-file|--maint-file|--timeframe|--min-weight|--cpu-smoothing|--proc-stat|--proc-meminfo|--proc-loadavg|--proc-net|--control-socket|--control-group|--seen-window|--max-probers|--payload-timeout|--allow|--metrics-listen|--maxconn-total|--timeout|--service|--status|--weight|--maxconn|--description) i=$((i + 1)) ;;
            -*) ;;
            *)
                if [ -z "$command" ]; then
                    command=$word
                elif [ "$command" = ctl ] && [ -z "$verb" ]; then
                    verb=$word
                fi
                ;;
        esac
    done
    case $prev in
        -c|--config|--state-file|--drain-file|--maint-file|--proc-stat|--proc-meminfo|--proc-loadavg|--proc-net|--control-socket)
            compopt -o filenames 2>/dev/null
            local IFS=$'\n'
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --service)
            COMPREPLY=($(compgen -W "$(_hapgent_services "$config")" -- "$cur"))
            return
            ;;
        --status)
            COMPREPLY=($(compgen -W "UP DOWN READY DRAIN FAIL MAINT STOPPED" -- "$cur"))
            return
            ;;
        --ip|--port|--max-connections|--write-timeout|--timeframe|--min-weight|--cpu-smoothing|--control-group|--seen-window|--max-probers|--payload-timeout|--allow|--metrics-listen|--maxconn-total|--timeout|--weight|--maxconn|--description) return ;; # a value to type
    esac
    if [[ $cur == -* ]]; then
        local flags="-c --config --ip --port --state-file --max-connections --write-timeout --log-requests --drain-file --maint-file --cpu-weight --timeframe --min-weight --cpu-smoothing --proc-stat --proc-meminfo --proc-loadavg --proc-net --systemd --control-socket --control-group --seen-window --max-probers --payload-timeout --allow --metrics-listen --maxconn-total -h --help -V --version"
        case $command in
            reply) flags+=" --json" ;;
            ctl) flags+=" --json --wait-seen --timeout --service --all" ;;
        esac
        if [ "$command" = ctl ]; then
            case $verb in
                set) flags+=" --status --weight --maxconn --description" ;;
            esac
        fi
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    if [ -z "$command" ]; then
        COMPREPLY=($(compgen -W "run check-config reply ctl" -- "$cur"))
    elif [ "$command" = ctl ] && [ -z "$verb" ]; then
        COMPREPLY=($(compgen -W "status probers metrics wait-seen up down ready drain maint weight maxconn description set" -- "$cur"))
    elif [ "$command" = ctl ] && [ "$prev" = weight ]; then
        COMPREPLY=($(compgen -W "none" -- "$cur"))
    elif [ "$command" = ctl ] && [ "$prev" = maxconn ]; then
        COMPREPLY=($(compgen -W "none" -- "$cur"))
    elif [ "$command" = ctl ] && [ "$prev" = description ]; then
        COMPREPLY=($(compgen -W "none" -- "$cur"))
    fi
}
complete -F _hapgent hapgent
