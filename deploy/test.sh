#!/usr/bin/env bash
# Runs every test of the workspace against a throwaway PostgreSQL cluster started for this run.
# Extra arguments go to the test runner (e.g. ./deploy/test.sh -p keyward-validator).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib/pg.sh
. deploy/lib/pg.sh

pg_ensure_installed
# The real KeyAuth Rust SDK that the client-API tests drive links OpenSSL through reqwest 0.11.
if ! pkg-config --exists openssl 2>/dev/null; then
  echo "keyward: installing pkg-config and libssl-dev for the KeyAuth SDK tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pkg-config libssl-dev >&2
fi
# The Keygen acceptance test drives the real keygen-sdk from PyPI (installed by the test itself).
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "keyward: installing python3 and pip for the Keygen SDK tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-pip >&2
fi
# The Roblox key-system client tests run the real Lua libraries (validator/tests/roblox_clients/)
# under Debian's Lua 5.1 with lua-cjson, their HTTP going through curl.
if ! command -v lua5.1 >/dev/null 2>&1 || ! lua5.1 -e 'require "cjson"' >/dev/null 2>&1 \
  || ! command -v curl >/dev/null 2>&1; then
  echo "keyward: installing lua5.1, lua-cjson and curl for the Roblox client tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq lua5.1 lua-cjson curl >&2
fi
# The systemd units are checked with systemd-analyze (loadtest/tests/deploy_systemd.rs); it is
# only a tool here, nothing runs under systemd.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "keyward: installing systemd (systemd-analyze) for the unit-file tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >&2
fi
# The CyberLicense export test reads the PDF back with poppler's pdftotext.
if ! command -v pdftotext >/dev/null 2>&1; then
  echo "keyward: installing poppler-utils for the PDF export tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq poppler-utils >&2
fi
# The admin UI's browser test drives Debian's Chromium (Playwright comes from PyPI, axe-core from
# npm, both fetched by the test itself); nothing ever downloads a browser build.
if ! command -v chromium >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "keyward: installing chromium (and npm) for the admin UI browser tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  pkgs="chromium fonts-dejavu-core"
  if ! command -v npm >/dev/null 2>&1; then pkgs="$pkgs npm"; fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $pkgs >&2
fi
chromium --version >&2 || true
# deploy/docker/'s balancer config is checked with `haproxy -c` (Debian's HAProxy).
if ! command -v haproxy >/dev/null 2>&1; then
  echo "keyward: installing haproxy for the container config tests" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq haproxy >&2
fi
datadir=$(mktemp -d /tmp/keyward-test-pg.XXXXXX)
chmod 755 "$datadir"
cleanup() { pg_stop "$datadir/replica"; pg_stop "$datadir"; rm -rf "$datadir"; }
trap cleanup EXIT
port=$(pg_free_port)
pg_start "$datadir" "$port" test
export KEYWARD_TEST_DATABASE_URL="postgres://keyward@127.0.0.1:$port/postgres"
echo "keyward: test PostgreSQL on 127.0.0.1:$port" >&2
# A streaming replica of it, for the read-replica tests (per-test databases replay onto it).
rport=$(pg_free_port)
pg_start_replica "$datadir/replica" "$rport" "$port" test
export KEYWARD_TEST_REPLICA_URL="postgres://keyward@127.0.0.1:$rport/postgres"
echo "keyward: test PostgreSQL replica on 127.0.0.1:$rport" >&2

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
