#!/usr/bin/env bash
# Starts and stops a throw-away PostgreSQL 15 (Debian's postgresql-15) for
# the tests of the PostgreSQL catalog (issue 18): its own data folder, a Unix
# socket in DIR/run and 127.0.0.1 on a free port, run as the unprivileged
# `postgres` user (PostgreSQL refuses root). Never touches a system-wide
# instance the package may have started.
#
#   tests/postgres/postgres.sh start DIR   everything lives under DIR (created;
#                                          a stopped instance left there is
#                                          wiped first, or with KEEP_DATA=1
#                                          started again on its data and
#                                          port). Progress goes to
#                                          stderr; stdout gets only KEY=VALUE
#                                          lines (values quoted for the shell),
#                                          also written to DIR/env:
#                                            DAGVAULT_TEST_POSTGRES (a libpq
#                                            connection string), POSTGRES_PID
#   tests/postgres/postgres.sh restart DIR kills the server started in DIR the
#                                          way a crash would (immediate mode)
#                                          and starts it again on the same data
#                                          and port; DIR/env gets the new pid.
#                                          DOWN_SECONDS=S keeps it down S s.
#   tests/postgres/postgres.sh stop DIR    stops the server by the pid it wrote
#                                          (fast shutdown, then SIGKILL after
#                                          30 s), then removes the data folder
#                                          and keeps DIR/log and DIR/env.
#                                          KEEP_DATA=1 keeps it all.
#
# The superuser is `dagvault`, trusted on the socket and on 127.0.0.1 only;
# one database, `dagvault`. fsync is off: the tests kill and restart the
# server process, never the machine, and the kernel keeps what was written.
set -euo pipefail

usage() { sed -n '2,29p' "$0" >&2; exit 2; }
(($# == 2)) || usage
cmd=$1
[[ $cmd == start || $cmd == stop || $cmd == restart ]] || usage
if [[ $cmd == stop && ! -d $2 ]]; then
  echo "[postgres] $2 does not exist; nothing to stop" >&2
  exit 0
fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
DATA=$DIR/data
RUN=$DIR/run
OS_USER=${POSTGRES_TEST_OS_USER:-postgres}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

log() { printf '[postgres %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_user() { runuser -u "$OS_USER" -- "$@"; }

# The postmaster's pid, if it is ours: alive, and serving this data folder.
our_pid() {
  local pid
  [[ -f $DATA/postmaster.pid ]] || return 1
  pid=$(head -n 1 "$DATA/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DATA" || return 1
  echo "$pid"
}

stop() {
  local pid i
  if pid=$(our_pid); then
    kill -INT "$pid" 2>/dev/null || true  # fast shutdown
    for ((i = 0; i < 300; ++i)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid still up after 30 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped pid $pid"
  fi
  if [[ ${KEEP_DATA:-0} != 1 ]]; then rm -rf "$DATA" "$RUN"; fi
}

# Starts the server on DATA, listening on PORT and on RUN's socket.
launch() {
  as_user "$BIN/pg_ctl" -D "$DATA" -l "$DIR/log/postgres.log" -w -t 60 start -o \
    "-p $1 -k $RUN -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
    >&2 || { tail -n 30 "$DIR/log/postgres.log" >&2; return 1; }
}

# The port the server was first started on (DIR/env).
port_of_env() {
  local port
  port=$(sed -n "s/.* port=\([0-9]*\) .*/\1/p" "$DIR/env")
  [[ -n $port ]] || die "no port in $DIR/env"
  echo "$port"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  [[ -n $BIN && -x $BIN/initdb ]] ||
    die "PostgreSQL is not installed (deploy/install-deps.sh installs postgresql)"
  id "$OS_USER" >/dev/null 2>&1 || die "no user $OS_USER to run PostgreSQL as"
  if our_pid >/dev/null; then die "a server is already running in $DATA; run: $0 stop $DIR"; fi
  if [[ ${KEEP_DATA:-0} == 1 && -f $DATA/PG_VERSION && -f $DIR/env ]]; then
    local kept_port pid
    kept_port=$(port_of_env)
    mkdir -p "$RUN" && chown "$OS_USER:" "$RUN"
    launch "$kept_port" || die "the server did not start on its kept data"
    pid=$(our_pid) || die "no postmaster.pid in $DATA after start"
    sed -i "s/^POSTGRES_PID=.*/POSTGRES_PID=$pid/" "$DIR/env"
    log "PostgreSQL started again on its data (pid $pid) on $RUN and 127.0.0.1:$kept_port"
    cat "$DIR/env"
    return
  fi
  rm -rf "$DATA" "$RUN"
  mkdir -p "$DATA" "$RUN" "$DIR/log"
  # The server's user must reach its folders through DIR.
  chmod 0711 "$DIR"
  as_user test -x "$DIR" ||
    die "the user $OS_USER cannot reach $DIR: let it through every folder above (chmod o+x)"
  chown "$OS_USER:" "$DATA" "$RUN" "$DIR/log"
  chmod 0700 "$DATA"
  local port started
  port=$(free_port)
  started=$(date +%s.%N)
  as_user "$BIN/initdb" -D "$DATA" -U dagvault --auth=trust --encoding=UTF8 --locale=C \
    --no-sync >"$DIR/log/initdb.log" 2>&1 || { cat "$DIR/log/initdb.log" >&2; die "initdb failed"; }
  launch "$port" || die "the server did not start"
  local pid
  pid=$(our_pid) || die "no postmaster.pid in $DATA after start"
  "$BIN/createdb" -h "$RUN" -p "$port" -U dagvault dagvault
  log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') up (pid $pid) on $RUN and" \
    "127.0.0.1:$port after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}") s"
  {
    echo "DAGVAULT_TEST_POSTGRES='host=$RUN port=$port dbname=dagvault user=dagvault'"
    echo "POSTGRES_PID=$pid"
  } | tee "$DIR/env"
  log "stop with: $0 stop $DIR"
}

restart() {
  local old pid started
  old=$(our_pid) || die "no server of ours runs in $DATA"
  started=$(date +%s.%N)
  local port
  port=$(port_of_env)
  # Immediate: no checkpoint, clients cut off; the start runs crash
  # recovery, on the same port.
  as_user "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 60 stop >&2 || die "the server did not stop"
  sleep "${DOWN_SECONDS:-0}"
  launch "$port" || die "the server did not start again"
  pid=$(our_pid) || die "no postmaster.pid in $DATA after the restart"
  sed -i "s/^POSTGRES_PID=.*/POSTGRES_PID=$pid/" "$DIR/env"
  log "restarted (pid $old, now $pid) after" \
    "$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started}") s"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
esac
