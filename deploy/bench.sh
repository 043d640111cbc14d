#!/usr/bin/env bash
# The standard benchmark suite in one command: release build, a private PostgreSQL, the
# control-plane, four validators (plus one that trusts the load generator as a proxy, for the
# rate-limiter measurement), servers and load generator pinned to separate CPUs where there are
# two or more, and BENCHMARKS.md written with every figure and the machine it ran on.
#   ./deploy/bench.sh           full run (~20 min on 2 cores, after the build)
#   ./deploy/bench.sh --quick   short smoke run (200k licenses, short phases)
#   ./deploy/bench.sh [--quick] --only keygen[,native,…]   only these rows of the suite
#       (`keyward-loadtest suite --help` lists them), written to a file in /tmp and shown,
#       BENCHMARKS.md untouched, no TLS section
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib/pg.sh
. deploy/lib/pg.sh
# shellcheck source=deploy/lib/services.sh
. deploy/lib/services.sh

command="deploy/bench.sh${*:+ $*}"
quick=() only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --only) only=(--only "${2:?--only needs a list of rows}"); shift 2 ;;
    *) echo "usage: deploy/bench.sh [--quick] [--only ROW,…]" >&2; exit 2 ;;
  esac
done
# Whether the run includes a row of the suite.
runs_row() { [ ${#only[@]} -eq 0 ] || [[ ",${only[1]}," == *",$1,"* ]]; }
out=BENCHMARKS.md
if [ ${#only[@]} -gt 0 ]; then out=$(mktemp /tmp/keyward-bench-rows.XXXXXX.md); fi

# The section deploy/fleet.sh --write keeps in BENCHMARKS.md, carried over the rewrite below.
fleet_section=""
if [ ${#only[@]} -eq 0 ] && [ -f BENCHMARKS.md ]; then
  fleet_section=$(awk -v h='## Fleet on one machine (`deploy/fleet.sh N`)' \
    '$0 == h { on = 1 } on && /^## / && $0 != h { on = 0 } on' BENCHMARKS.md)
fi

# wrk: the cross-check of every throughput row and of the generator's own ceiling.
ensure_debian_tool wrk
echo "keyward: building (release)"
cargo build -q --release -p keyward-control-plane -p keyward-validator -p keyward-loadtest
t="$(cargo_target_dir)/release"

bench_scratch keyward-bench

# Servers on CPU 0, the load generator on the others (PostgreSQL floats).
server=() load=() server_cpus=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server=(taskset -c 0)
  load=(taskset -c "1-$(( $(nproc) - 1 ))")
  server_cpus=(--server-cpus 0)
fi

# What signing one Keygen answer costs the server (criterion, on the servers' CPU, before they
# start): the Keygen row divides it by the validator's CPU per request.
if runs_row keygen; then
  echo "keyward: what signing a Keygen answer costs (criterion)"
  cargo bench -q -p keyward-benches --bench keygen_signature --no-run 2>/dev/null
  "${server[@]}" cargo bench -q -p keyward-benches --bench keygen_signature -- --noplot \
    >"$dir/keygen-signature-bench.log" 2>&1 || { cat "$dir/keygen-signature-bench.log" >&2; exit 1; }
fi

export KEYWARD_ADMIN_PASSWORD="bench-$(date +%s)-pw"
"$t/control-plane" migrate >/dev/null
"$t/control-plane" create-admin --username admin >/dev/null

cp_port=$(pg_free_port)
KEYWARD_CP_LISTEN="127.0.0.1:$cp_port" setsid "${server[@]}" "$t/control-plane" serve \
  >"$dir/control-plane.log" 2>&1 &
pids+=($!)
wait_ready "$cp_port" control-plane "$dir/control-plane.log"

validator_args=()
for i in 1 2 3 4; do
  port=$(pg_free_port)
  # One load generator is one client address and one app: no limits on these.
  KEYWARD_VALIDATOR_LISTEN="127.0.0.1:$port" KEYWARD_RATE_LIMIT_PER_SEC=0 KEYWARD_APP_RATE_LIMIT_PER_SEC=0 \
    KEYWARD_CYBERLICENSE_RATE_LIMIT=0 setsid "${server[@]}" "$t/validator" >"$dir/validator-$i.log" 2>&1 &
  pids+=($!)
  validator_args+=(--validator "http://127.0.0.1:$port" --validator-pid "$!")
  wait_ready "$port" "validator $i" "$dir/validator-$i.log"
done
lim_port=$(pg_free_port)
KEYWARD_VALIDATOR_LISTEN="127.0.0.1:$lim_port" KEYWARD_TRUSTED_PROXIES=127.0.0.1/32 \
  setsid "${server[@]}" "$t/validator" >"$dir/validator-limiter.log" 2>&1 &
pids+=($!)
lim_pid=$!
wait_ready "$lim_port" "limiter validator" "$dir/validator-limiter.log"

"${load[@]}" "$t/keyward-loadtest" suite \
  --control-plane "http://127.0.0.1:$cp_port" --username admin \
  "${validator_args[@]}" --limiter-validator "http://127.0.0.1:$lim_port,$lim_pid" \
  "${server_cpus[@]}" "${quick[@]}" "${only[@]}" --criterion-dir "$(cargo_target_dir)/criterion" \
  --out "$out" --command "$command"

if [ ${#only[@]} -gt 0 ]; then
  cat "$out"
  echo "keyward: wrote $out (rows ${only[1]} only; BENCHMARKS.md untouched)"
  exit 0
fi

# What TLS costs the server: criterion, in-process (no network, no generator), on the servers' CPU.
echo "keyward: TLS handshake and per-request cost (criterion)"
cargo bench -q -p keyward-benches --bench tls --no-run 2>/dev/null
"${server[@]}" cargo bench -q -p keyward-benches --bench tls -- --noplot >"$dir/tls-bench.log" 2>&1 || {
  cat "$dir/tls-bench.log" >&2; exit 1; }
python3 - "$(cargo_target_dir)/criterion/tls" >>BENCHMARKS.md <<'PY'
import json, sys
root = sys.argv[1]
def median_us(name):
    with open(f"{root}/{name}/new/estimates.json") as f:
        return json.load(f)["median"]["point_estimate"] / 1000
h13, h12, req = (median_us(n) for n in ("handshake_tls13_server", "handshake_tls12_server", "request_tls13_server"))
print("\n## TLS termination: the server's CPU per handshake and per request (`cargo bench -p keyward-benches --bench tls`)\n")
print("Client and server in one process through memory buffers, only the server's calls timed, with the services' own")
print("`ServerConfig` (rustls on aws-lc-rs, ECDSA P-256 certificate, full handshakes: no resumption). Medians.\n")
print("| Measurement | Server CPU | One core's ceiling |")
print("|---|---|---|")
print(f"| Full handshake, TLS 1.3 (X25519, AES-256-GCM) | {h13:.1f} µs | {1e6 / h13:,.0f} handshakes/s |")
print(f"| Full handshake, TLS 1.2 (ECDHE X25519, ECDSA) | {h12:.1f} µs | {1e6 / h12:,.0f} handshakes/s |")
print(f"| One request (214 B) and its answer (347 B) on an open TLS 1.3 connection | {req:.2f} µs | {1e6 / req:,.0f} req/s of record work alone |")
PY
{
  echo
  echo "End to end, \`deploy/bench-tls.sh 3 10\`: one validator over plain HTTP and one over HTTPS, same cache-hit"
  echo "\`/v1/validate\`, wrk (OpenSSL 3 client) on CPU 1, servers on CPU 0, interleaved pairs. One wrk core cannot"
  echo "saturate the server over TLS, least of all with a handshake per request (its OpenSSL handshake costs more"
  echo "than the server's): read the server's CPU per request, not the ratio, where a row says generator-bound."
  echo
  ./deploy/bench-tls.sh 3 10 2>"$dir/bench-tls.log" || { cat "$dir/bench-tls.log" >&2; exit 1; }
} >>BENCHMARKS.md
cat deploy/bench-findings.md >> BENCHMARKS.md
if [ -n "$fleet_section" ]; then printf '\n%s\n' "$fleet_section" >>BENCHMARKS.md; fi
echo "keyward: wrote BENCHMARKS.md"
