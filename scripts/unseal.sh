#!/usr/bin/env bash
# Strongroom unseal ceremony, one officer's part.
#
#   scripts/unseal.sh https://vault-0:3000 https://vault-1:3000 ...
#   STRONGROOM_ADDRS="https://vault-0:3000 https://vault-1:3000" scripts/unseal.sh
#   scripts/unseal.sh --k8s app.kubernetes.io/name=strongroom [--namespace vault] [--port 3000]
#
# With --k8s, every pod matching the label selector is reached through `kubectl port-forward`
# (pods have no public address and the image has no shell), one after the other.
#
# Each instance of the fleet is unsealed on its own. The officer types their key share once,
# without echo; it is sent to every instance given, and each instance's progress is printed.
# The share never reaches disk, the process list (argv) or shell history: it lives in a shell
# variable and is piped to curl's standard input by a shell builtin.
set -euo pipefail

usage() {
    echo "usage: $0 [--reset] URL [URL ...]   (or set STRONGROOM_ADDRS)" >&2
    echo "       $0 [--reset] --k8s SELECTOR [--namespace NS] [--port PORT]" >&2
    exit 2
}

reset=0
addrs=()
selector=""
namespace=""
pod_port=3000
while [ $# -gt 0 ]; do
    case "$1" in
        --reset) reset=1 ;;
        --k8s) [ $# -ge 2 ] || usage; selector=$2; shift ;;
        --namespace|-n) [ $# -ge 2 ] || usage; namespace=$2; shift ;;
        --port) [ $# -ge 2 ] || usage; pod_port=$2; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $1" >&2; usage ;;
        *) addrs+=("$1") ;;
    esac
    shift
done
if [ -z "$selector" ] && [ ${#addrs[@]} -eq 0 ] && [ -n "${STRONGROOM_ADDRS:-}" ]; then
    read -r -a addrs <<<"$STRONGROOM_ADDRS"
fi
[ -n "$selector" ] || [ ${#addrs[@]} -gt 0 ] || usage
command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }

kube() {
    if [ -n "$namespace" ]; then kubectl -n "$namespace" "$@"; else kubectl "$@"; fi
}

pods=()
if [ -n "$selector" ]; then
    command -v kubectl >/dev/null || { echo "kubectl is required for --k8s" >&2; exit 2; }
    mapfile -t pods < <(kube get pods -l "$selector" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
    [ ${#pods[@]} -gt 0 ] || { echo "no pods match $selector" >&2; exit 1; }
fi

post() { # url, body on stdin
    curl -sS --max-time 15 -H 'Content-Type: application/json' --data-binary @- "$1/v1/sys/unseal"
}

field() { # name, json -> value of a scalar field
    printf '%s' "$2" | sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[a-z0-9]*\).*/\1/p" | tr -d '"'
}

share=""
if [ "$reset" -eq 0 ]; then
    if [ -t 0 ]; then
        printf 'Key share (input hidden): ' >&2
    fi
    IFS= read -r -s share || true
    [ -t 0 ] && echo >&2
    share=$(printf '%s' "$share" | tr -d '[:space:]')
    if ! [[ "$share" =~ ^[0-9a-fA-F]+$ ]]; then
        share=""
        echo "that is not a key share (expected hex)" >&2
        exit 2
    fi
fi
trap 'share=""' EXIT

failures=0
send() { # url, label
    local url=${1%/} label=$2 reply
    if [ "$reset" -eq 1 ]; then
        reply=$(printf '{"reset":true}' | post "$url" 2>&1) || true
    else
        reply=$(printf '{"key":"%s"}' "$share" | post "$url" 2>&1) || true
    fi
    if [ "$(field status "$reply")" = "ok" ]; then
        if [ "$(field sealed "$reply")" = "false" ]; then
            echo "$label: unsealed"
        else
            echo "$label: sealed, progress $(field progress "$reply")/$(field t "$reply")"
        fi
    else
        msg=$(field message "$reply")
        echo "$label: ERROR ${msg:-$reply}" >&2
        failures=$((failures + 1))
    fi
}

for url in "${addrs[@]}"; do
    send "$url" "${url%/}"
done

for pod in "${pods[@]}"; do
    fwd_log=$(mktemp)
    kube port-forward "pod/$pod" ":$pod_port" >"$fwd_log" 2>&1 &
    fwd_pid=$!
    local_port=""
    for _ in $(seq 1 100); do
        local_port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$fwd_log" | head -n 1)
        [ -n "$local_port" ] && break
        kill -0 "$fwd_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$local_port" ]; then
        send "http://127.0.0.1:$local_port" "pod/$pod"
    else
        echo "pod/$pod: ERROR port-forward failed: $(head -c 300 "$fwd_log")" >&2
        failures=$((failures + 1))
    fi
    kill "$fwd_pid" 2>/dev/null || true
    wait "$fwd_pid" 2>/dev/null || true
    rm -f "$fwd_log"
done
share=""
[ "$failures" -eq 0 ]
