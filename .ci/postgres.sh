#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests marked `postgres` (several search workers on one
# PostgreSQL study). Idempotent, and soft: when PostgreSQL cannot be installed or started it
# says why on stderr and prints nothing, so those tests are skipped instead of failing CI.
#
#   eval "$(.ci/postgres.sh start)"   # prints: export ARCHON_TEST_POSTGRES_URL=postgresql://...
#   .ci/postgres.sh url               # the URL again, if the server is running
#   .ci/postgres.sh stop              # stop the server (add --clean to delete its files)
#
# The cluster lives in $ARCHON_PG_DIR (default: ${TMPDIR:-/tmp}/archon-ci-postgres), listens on
# 127.0.0.1 on a free port, trusts local connections (test data only), and runs as the
# `postgres` system user when this script runs as root (PostgreSQL refuses to run as root).
set -uo pipefail

MODE="${1:-start}"
DIR="${ARCHON_PG_DIR:-${TMPDIR:-/tmp}/archon-ci-postgres}"
DATA="$DIR/data"
DB="archon_test"
SUPERUSER="archon"

say() { echo "postgres.sh: $*" >&2; }
give_up() { say "$*; the postgres tests will be skipped"; exit 0; }

find_bin() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null)"
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  dir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
  [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  return 1
}

install_postgres() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  say "installing PostgreSQL from Debian (apt-get install postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$DIR/apt.log" 2>&1 &&
    apt-get install -y -qq postgresql >>"$DIR/apt.log" 2>&1
}

# Run a PostgreSQL tool as the cluster owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() { echo "postgresql://$SUPERUSER@127.0.0.1:$(cat "$DIR/port")/$DB"; }

running() {
  [ -f "$DATA/PG_VERSION" ] && [ -f "$DIR/port" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  mkdir -p "$DIR" || give_up "cannot create $DIR"
  BIN="$(find_bin)" || { install_postgres && BIN="$(find_bin)"; } ||
    give_up "PostgreSQL is not installed and could not be installed (see $DIR/apt.log)"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres ||
      give_up "no 'postgres' user to run the server as"
    chown postgres "$DIR" || give_up "cannot hand $DIR to the postgres user"
  fi
  if running; then
    say "already running on port $(cat "$DIR/port")"
  else
    if [ ! -f "$DATA/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 ||
        give_up "initdb failed (see $DIR/initdb.log)"
    fi
    free_port >"$DIR/port" || give_up "no free port (python3 missing?)"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $(cat "$DIR/port") -k $DIR" start >/dev/null 2>&1 ||
      give_up "the server did not start (see $DIR/server.log)"
  fi
  local port
  port="$(cat "$DIR/port")"
  if ! as_owner "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB'" 2>/dev/null | grep -q 1; then
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" "$DB" 2>>"$DIR/server.log" ||
      give_up "could not create database $DB (see $DIR/server.log)"
  fi
  say "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') at $(url)"
  echo "export ARCHON_TEST_POSTGRES_URL=$(url)"
}

stop() {
  BIN="$(find_bin)" || { say "PostgreSQL is not installed: nothing to stop"; return 0; }
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 && say "stopped"
  else
    say "not running"
  fi
  if [ "${1:-}" = "--clean" ]; then
    rm -rf "$DIR" && say "removed $DIR"
  fi
}

case "$MODE" in
  start) start ;;
  stop) stop "${2:-}" ;;
  url)
    BIN="$(find_bin)" || exit 0
    running && echo "$(url)"
    ;;
  *)
    echo "usage: $0 start|stop [--clean]|url" >&2
    exit 2
    ;;
esac
exit 0
