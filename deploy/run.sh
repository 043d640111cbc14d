#!/usr/bin/env bash
# Runs the whole system locally: a private PostgreSQL cluster (data in .keyward/pg; or the
# database at $DATABASE_URL when set), migrations, the control-plane, one validator and a demo
# tenant whose credentials and a ready-to-paste curl are printed. Ctrl-C stops everything.
#
#   ./deploy/run.sh            debug build
#   ./deploy/run.sh --release  optimised build
#
# Ports: KEYWARD_CP_PORT (8080), KEYWARD_VALIDATOR_PORT (8081), KEYWARD_PG_PORT (54329).
# State (cluster, logs): KEYWARD_STATE_DIR (.keyward).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib/pg.sh
. deploy/lib/pg.sh
# shellcheck source=deploy/lib/services.sh
. deploy/lib/services.sh

profile=debug
cargo_flags=()
if [ "${1:-}" = "--release" ]; then profile=release; cargo_flags=(--release); fi
cp_port=${KEYWARD_CP_PORT:-8080}
v_port=${KEYWARD_VALIDATOR_PORT:-8081}
state=${KEYWARD_STATE_DIR:-$PWD/.keyward}
mkdir -p "$state/logs"

pids=()
own_pg=""
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo; echo "keyward: stopping services"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [ -n "$own_pg" ]; then echo "keyward: stopping PostgreSQL"; pg_stop "$own_pg"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for p in "$cp_port" "$v_port"; do
  if port_busy "$p"; then echo "keyward: port $p is in use (set KEYWARD_CP_PORT / KEYWARD_VALIDATOR_PORT)" >&2; exit 1; fi
done

if [ -z "${DATABASE_URL:-}" ]; then
  pg_ensure_installed
  pg_port=${KEYWARD_PG_PORT:-54329}
  pg_stop "$state/pg"   # a cluster left running by an interrupted run
  if port_busy "$pg_port"; then echo "keyward: port $pg_port is in use (set KEYWARD_PG_PORT)" >&2; exit 1; fi
  chmod 755 "$state"
  pg_start "$state/pg" "$pg_port" run
  own_pg="$state/pg"
  bin=$(pg_bin_dir)
  if ! pg_as_user "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U keyward -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'keyward'" | grep -q 1; then
    pg_as_user "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U keyward keyward
  fi
  export DATABASE_URL="postgres://keyward@127.0.0.1:$pg_port/keyward"
  echo "keyward: PostgreSQL on 127.0.0.1:$pg_port (data in $state/pg)"
fi

echo "keyward: building ($profile)"
cargo build -q "${cargo_flags[@]}" -p keyward-control-plane -p keyward-validator
target="$(cargo_target_dir)/$profile"

"$target/control-plane" migrate
demo=$("$target/control-plane" demo --control-plane-url "http://127.0.0.1:$cp_port" \
  --validator-url "http://127.0.0.1:$v_port")

# Own sessions (setsid): Ctrl-C reaches only this script, which stops the services in order.
KEYWARD_CP_LISTEN="127.0.0.1:$cp_port" setsid "$target/control-plane" serve >"$state/logs/control-plane.log" 2>&1 &
pids+=($!)
KEYWARD_VALIDATOR_LISTEN="127.0.0.1:$v_port" setsid "$target/validator" >"$state/logs/validator.log" 2>&1 &
pids+=($!)
wait_ready "$cp_port" control-plane "$state/logs/control-plane.log"
wait_ready "$v_port" validator "$state/logs/validator.log"

echo
echo "$demo" | grep -v '^KEYWARD_DEMO_CURL='
echo
echo "Logs: $state/logs/control-plane.log, $state/logs/validator.log"
echo "Keyward is running. Press Ctrl-C to stop."
# Returns when a service exits (or on Ctrl-C through the trap).
wait -n "${pids[@]}" || true
echo "keyward: a service exited; see the logs above" >&2
exit 1
