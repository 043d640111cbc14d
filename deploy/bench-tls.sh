#!/usr/bin/env bash
# TLS cost end to end: one validator over plain HTTP and one over HTTPS (same binary, same
# cache-hit request), driven by wrk from Debian's packages, interleaved pairs. Keep-alive rows
# show the per-request cost of TLS records; `Connection: close` rows make every request a full
# handshake. Servers on CPU 0, wrk on CPU 1; each row prints both processes' CPU share, and a row
# where wrk used ≥ 90 % of its core is marked generator-bound (its ratio is then an upper bound
# set by wrk, not the server's).
#   ./deploy/bench-tls.sh [pairs] [seconds]      (default 3 pairs of 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib/pg.sh
. deploy/lib/pg.sh
# shellcheck source=deploy/lib/services.sh
. deploy/lib/services.sh
pairs=${1:-3} secs=${2:-10}

ensure_debian_tool wrk
echo "keyward: building (release)" >&2
cargo build -q --release -p keyward-control-plane -p keyward-validator
t="$(cargo_target_dir)/release"

bench_scratch keyward-bench-tls

server=() load=()
if [ "$(nproc)" -ge 2 ]; then server=(taskset -c 0); load=(taskset -c 1); fi
"$t/control-plane" migrate >/dev/null
demo=$("$t/control-plane" demo)
body=$(printf '%s\n' "$demo" | sed -n "s/.*-d '\({\"app\".*}\)'.*/\1/p" | head -n 1)
[ -n "$body" ] || { echo "keyward: no demo key in: $demo" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

start_validator() { # name port [tls]
  local name=$1 port=$2
  if [ "${3:-}" = tls ]; then
    export KEYWARD_TLS_CERT="$dir/cert.pem" KEYWARD_TLS_KEY="$dir/key.pem"
  fi
  KEYWARD_VALIDATOR_LISTEN="127.0.0.1:$port" KEYWARD_RATE_LIMIT_PER_SEC=0 KEYWARD_APP_RATE_LIMIT_PER_SEC=0 \
    setsid "${server[@]}" "$t/validator" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  unset KEYWARD_TLS_CERT KEYWARD_TLS_KEY
}
plain_port=$(pg_free_port)
start_validator plain "$plain_port"
plain_pid=${pids[-1]}
wait_ready "$plain_port" "plain validator" "$dir/plain.log"
tls_port=$(pg_free_port)
start_validator tls "$tls_port" tls
tls_pid=${pids[-1]}
for _ in $(seq 1 300); do
  if curl -sfk "https://127.0.0.1:$tls_port/readyz" >/dev/null; then break; fi
  sleep 0.1
done
curl -sfk "https://127.0.0.1:$tls_port/readyz" >/dev/null || { tail "$dir/tls.log" >&2; exit 1; }

cat >"$dir/validate.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '$body'
LUA
cat >"$dir/close.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["connection"] = "close"
wrk.body = '$body'
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run URL PID SCRIPT CONNECTIONS → "req/s server% wrk% server-µs/request errors"
run() {
  local url=$1 pid=$2 script=$3 conns=$4 before after out wrk_cpu
  before=$(cpu_ticks "$pid")
  TIMEFORMAT=%P
  out=$( { time "${load[@]}" wrk -t1 -c"$conns" -d"${secs}s" -s "$script" "$url/v1/validate" 2>&1; } 2>&1 )
  after=$(cpu_ticks "$pid")
  wrk_cpu=$(printf '%s\n' "$out" | tail -n 1)
  local rps errors
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  errors=$(printf '%s\n' "$out" | awk '/Non-2xx|Socket errors/ {printf "%s ", $0}')
  # Server CPU per request: what TLS adds, even where wrk capped the rate.
  local us
  us=$(awk -v t=$((after - before)) -v hz="$hz" -v r="$rps" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }')
  printf '%s %s %s %s %s\n' "$rps" "$(( (after - before) * 100 / hz / secs ))" "${wrk_cpu%.*}" "$us" "${errors:-none}"
}

echo "| Mode (wrk -t1) | Plain HTTP: req/s (server CPU %, wrk CPU %), server µs/request | HTTPS: same | HTTPS ÷ plain req/s | TLS adds, server µs/request |"
echo "|---|---|---|---|---|"
for mode in keep-alive close; do
  if [ "$mode" = close ]; then script="$dir/close.lua" conns=8; else script="$dir/validate.lua" conns=32; fi
  for i in $(seq 1 "$pairs"); do
    read -r p_rps p_srv p_wrk p_us p_err < <(run "http://127.0.0.1:$plain_port" "$plain_pid" "$script" "$conns")
    read -r s_rps s_srv s_wrk s_us s_err < <(run "https://127.0.0.1:$tls_port" "$tls_pid" "$script" "$conns")
    note=""
    if [ "${p_wrk:-0}" -ge 90 ] || [ "${s_wrk:-0}" -ge 90 ]; then note=" (generator-bound)"; fi
    if [ "$p_err" != none ] || [ "$s_err" != none ]; then note="$note errors: $p_err / $s_err"; fi
    ratio=$(awk -v a="$s_rps" -v b="$p_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    added=$(awk -v a="$s_us" -v b="$p_us" 'BEGIN { printf "%.1f", a - b }')
    echo "| $mode, $conns connections, pair $i | $p_rps ($p_srv %, $p_wrk %), $p_us µs | $s_rps ($s_srv %, $s_wrk %), $s_us µs | $ratio$note | $added µs |"
  done
done
