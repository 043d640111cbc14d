# shellcheck shell=bash
# Private PostgreSQL clusters for Keyward's run and test commands. Sourced, not executed.
#
# PostgreSQL refuses to run as root, so when we are root the cluster runs as the `postgres`
# system user (created by Debian's package) and its files are owned by it.

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

# Installs PostgreSQL from Debian's packages when its server binaries are missing.
pg_ensure_installed() {
  if [ -n "$(pg_bin_dir)" ]; then return 0; fi
  echo "keyward: PostgreSQL server binaries not found; installing Debian's postgresql package" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
  if [ -z "$(pg_bin_dir)" ]; then
    echo "keyward: PostgreSQL installation failed" >&2
    return 1
  fi
}

# The user the cluster runs as.
pg_run_user() {
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    echo postgres
  else
    id -un
  fi
}

pg_as_user() {
  local user; user=$(pg_run_user)
  if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

# Prints a free TCP port on the loopback interface.
pg_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

# pg_start DATADIR PORT MODE  (MODE = run | test | bench)
# Creates the cluster on first use, then starts it listening on 127.0.0.1:PORT with its socket
# inside DATADIR. Test clusters trade durability for speed; bench clusters keep the data in memory.
pg_start() {
  local datadir=$1 port=$2 mode=$3 bin user
  bin=$(pg_bin_dir)
  user=$(pg_run_user)
  mkdir -p "$datadir"
  if [ ! -f "$datadir/data/PG_VERSION" ]; then
    mkdir -p "$datadir/data" "$datadir/socket"
    chown -R "$user" "$datadir"
    chmod 700 "$datadir/data"
    pg_as_user "$bin/initdb" -D "$datadir/data" -U keyward --auth=trust --encoding=UTF8 \
      --no-locale $( [ "$mode" = test ] && echo --no-sync ) >"$datadir/initdb.log" 2>&1 || {
        cat "$datadir/initdb.log" >&2; return 1; }
  fi
  pg_ctl_start "$datadir" "$port" "$mode"
}

# Starts an existing cluster (a primary or a replica) with the options of its MODE.
pg_ctl_start() {
  local datadir=$1 port=$2 mode=$3 bin
  bin=$(pg_bin_dir)
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $datadir/socket -c max_connections=400"
  if [ "$mode" = test ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB"
  elif [ "$mode" = bench ]; then
    # Durable as in production, but with the million-license table in shared buffers (the
    # 128 MB default would measure the OS page cache instead).
    opts="$opts -c shared_buffers=1GB -c max_wal_size=4GB"
  fi
  pg_as_user "$bin/pg_ctl" -D "$datadir/data" -o "$opts" -l "$datadir/postgres.log" -w -t 60 start >/dev/null || {
    echo "keyward: PostgreSQL failed to start; log follows" >&2
    tail -n 30 "$datadir/postgres.log" >&2
    return 1
  }
}

# pg_start_replica DATADIR PORT PRIMARY_PORT [MODE]  (MODE defaults to test)
# A streaming replica of the cluster on PRIMARY_PORT: a base backup (-R writes primary_conninfo
# and standby.signal) started like pg_start's clusters; hot_standby is on by default. initdb's
# trust auth and PG15's default pg_hba allow replication connections from 127.0.0.1.
pg_start_replica() {
  local datadir=$1 port=$2 primary=$3 mode=${4:-test} bin user
  bin=$(pg_bin_dir)
  user=$(pg_run_user)
  if [ ! -f "$datadir/data/PG_VERSION" ]; then
    mkdir -p "$datadir/socket"
    chown -R "$user" "$datadir"
    pg_as_user "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U keyward -D "$datadir/data" \
      -R -X stream -c fast >"$datadir/basebackup.log" 2>&1 || {
        cat "$datadir/basebackup.log" >&2; return 1; }
    chmod 700 "$datadir/data"
  fi
  pg_ctl_start "$datadir" "$port" "$mode"
}

pg_stop() {
  local datadir=$1 bin
  bin=$(pg_bin_dir)
  if [ -f "$datadir/data/postmaster.pid" ]; then
    pg_as_user "$bin/pg_ctl" -D "$datadir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}
