# Shared by the peer comparison scripts: start and stop RabbitMQ on loopback as
# shared/PEERS.md describes (temp dirs, our own pid, stop with rabbitmqctl).
# Sourced after the caller sets: tmp, rabbit_bin, rabbit_port, ready_deadline_s.

rabbit_pid=""
epmd_was_running=0
if pgrep -x epmd >/dev/null; then epmd_was_running=1; fi

rabbit_env() {
    env HOME="$tmp/home" \
        RABBITMQ_MNESIA_BASE="$tmp/mnesia" \
        RABBITMQ_LOG_BASE="$tmp/log" \
        RABBITMQ_PID_FILE="$tmp/rabbit.pid" \
        RABBITMQ_CONFIG_FILE="$tmp/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/enabled_plugins" \
        RABBITMQ_NODENAME=rabbit@localhost \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$rabbit_port" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_rabbit() {
    if [[ -n "$rabbit_pid" ]] && kill -0 "$rabbit_pid" 2>/dev/null; then
        echo "== stopping RabbitMQ (pid $rabbit_pid)"
        rabbit_env "$rabbit_bin/rabbitmqctl" -q stop >/dev/null 2>&1 || true
        for _ in $(seq 1 300); do
            kill -0 "$rabbit_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$rabbit_pid" 2>/dev/null; then kill -9 "$rabbit_pid" || true; fi
    fi
    rabbit_pid=""
    # epmd is started by the Erlang VM and outlives it; end it only if this run started it.
    if [[ "$epmd_was_running" == 0 ]]; then
        local epmd_pid
        for epmd_pid in $(pgrep -x epmd || true); do kill "$epmd_pid" 2>/dev/null || true; done
    fi
}

start_rabbit() {
    mkdir -p "$tmp/home" "$tmp/mnesia" "$tmp/log"
    printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$rabbit_port" >"$tmp/rabbitmq.conf"
    printf '[].\n' >"$tmp/enabled_plugins"
    if port_open "$rabbit_port"; then
        echo "error: port $rabbit_port is taken; set RABBITMQ_PORT" >&2
        exit 1
    fi
    echo "== starting RabbitMQ on 127.0.0.1:$rabbit_port"
    rabbit_env "$rabbit_bin/rabbitmq-server" >"$tmp/rabbit.out" 2>&1 &
    local started=$SECONDS
    until [[ -s "$tmp/rabbit.pid" ]] && port_open "$rabbit_port" \
        && rabbit_env "$rabbit_bin/rabbitmq-diagnostics" -q check_running >/dev/null 2>&1; do
        if ((SECONDS - started > ready_deadline_s)); then
            echo "error: RabbitMQ not ready after ${ready_deadline_s}s; its output:" >&2
            tail -n 30 "$tmp/rabbit.out" >&2
            exit 1
        fi
        if [[ -s "$tmp/rabbit.pid" ]]; then rabbit_pid="$(cat "$tmp/rabbit.pid")"; fi
        sleep 0.5
    done
    rabbit_pid="$(cat "$tmp/rabbit.pid")"
    echo "   ready in $((SECONDS - started)) s (Erlang VM pid $rabbit_pid)"
}
