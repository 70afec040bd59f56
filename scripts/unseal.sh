#!/usr/bin/env bash
# Strongroom unseal ceremony, one officer's part.
#
#   scripts/unseal.sh https://vault-0:3000 https://vault-1:3000 ...
#   STRONGROOM_ADDRS="https://vault-0:3000 https://vault-1:3000" scripts/unseal.sh
#
# Each instance of the fleet is unsealed on its own. The officer types their key share once,
# without echo; it is sent to every instance given, and each instance's progress is printed.
# The share never reaches disk, the process list (argv) or shell history: it lives in a shell
# variable and is piped to curl's standard input by a shell builtin.
set -euo pipefail

usage() {
    echo "usage: $0 [--reset] URL [URL ...]   (or set STRONGROOM_ADDRS)" >&2
    exit 2
}

reset=0
addrs=()
for arg in "$@"; do
    case "$arg" in
        --reset) reset=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) addrs+=("$arg") ;;
    esac
done
if [ ${#addrs[@]} -eq 0 ] && [ -n "${STRONGROOM_ADDRS:-}" ]; then
    read -r -a addrs <<<"$STRONGROOM_ADDRS"
fi
[ ${#addrs[@]} -gt 0 ] || usage
command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }

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
for url in "${addrs[@]}"; do
    url=${url%/}
    if [ "$reset" -eq 1 ]; then
        reply=$(printf '{"reset":true}' | post "$url" 2>&1) || true
    else
        reply=$(printf '{"key":"%s"}' "$share" | post "$url" 2>&1) || true
    fi
    if [ "$(field status "$reply")" = "ok" ]; then
        if [ "$(field sealed "$reply")" = "false" ]; then
            echo "$url: unsealed"
        else
            echo "$url: sealed, progress $(field progress "$reply")/$(field t "$reply")"
        fi
    else
        msg=$(field message "$reply")
        echo "$url: ERROR ${msg:-$reply}" >&2
        failures=$((failures + 1))
    fi
done
share=""
[ "$failures" -eq 0 ]
