# shellcheck shell=bash
# Helpers of the scripts that start Keyward's services. Sourced, not executed.

# Where cargo puts what it builds: honours CARGO_TARGET_DIR and build.target-dir in cargo's
# config, so scripts never assume ./target.
cargo_target_dir() {
  local dir
  dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  if [ -z "$dir" ]; then echo "keyward: cargo did not say where it builds" >&2; return 1; fi
  printf '%s\n' "$dir"
}

# Installs a command from Debian's package of that name when it is missing (the benchmarks'
# wrk cross-checks).
ensure_debian_tool() {
  local tool=$1
  if command -v "$tool" >/dev/null; then return 0; fi
  echo "keyward: installing $tool from Debian's packages" >&2
  local sudo=""; if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$tool" >&2
  command -v "$tool" >/dev/null || { echo "keyward: $tool installation failed" >&2; return 1; }
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when the service on the port answers /readyz with 200.
ready() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == *" 200"* ]]
}

# Waits up to 30 s for a service to be ready; shows its log when it is not.
wait_ready() {
  local port=$1 name=$2 log=$3
  for _ in $(seq 1 300); do
    if ready "$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "keyward: $name did not become ready; last log lines:" >&2
  tail -n 30 "$log" >&2
  return 1
}

# bench_scratch PREFIX: a scratch directory in `dir`, a private bench PostgreSQL in it with the
# database `keyward` (DATABASE_URL exported), and an exit trap that stops the processes listed
# in `pids` and then the cluster. Needs deploy/lib/pg.sh.
bench_scratch() {
  pg_ensure_installed
  dir=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$dir"
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
  local port
  port=$(pg_free_port)
  pg_start "$dir/pg" "$port" bench
  pg_as_user "$(pg_bin_dir)/createdb" -h 127.0.0.1 -p "$port" -U keyward keyward
  export DATABASE_URL="postgres://keyward@127.0.0.1:$port/keyward"
}

bench_cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  pg_stop "$dir/pg"
  rm -rf "$dir"
}
