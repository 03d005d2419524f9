#!/usr/bin/env bash
# An N-node lab of mailstored processes on this machine: units SG01 (a
# storage group, databases MDB01A and MDB01B) and DB02 (one database), each
# with a copy on every node; node1 holds the active copies, the last node's
# copies are lagged. Ports are chosen free; configuration, data, logs and
# pid files all live under one folder.
#
#   deploy/lab/lab.sh start  [--dir DIR] [--nodes N] [--lag-seconds S] [--log-size BYTES] [--fresh]
#                            [--dagvault] [--coordinator-port P] [--s3] [--ha]
#   deploy/lab/lab.sh stop   [--dir DIR]
#   deploy/lab/lab.sh status [--dir DIR]
#   deploy/lab/lab.sh env    [--dir DIR]     prints: export MAILSTORE_SERVER=<node1's store address>
#
# DIR defaults to ./lab/mailstored. `start` on a stopped lab starts it again
# with its data; --fresh wipes it first. Layout:
#   DIR/nodes.txt                 NAME STORE REPLICATION CONFIG, one line per node
#   DIR/<node>/mailstored.conf    the node's configuration (fields: proto/dagvault/v1/mailstored.proto)
#   DIR/<node>/mailstored.log     its log; DIR/<node>/mailstored.pid its pid
#   DIR/<node>/data/              its copies of the units
#
# --dagvault makes it a whole deployment: a CA and certificates (the nodes
# replicate over mutual TLS), a repository, a dagvault-coordinator on
# 127.0.0.1:P (default 7180, or the lab's P when it was started before;
# its /metrics on P+1 and its web console on
# P+2, both over HTTPS) and a
# dagvault-agent per node:
#   DIR/certs/                    ca.crt, coordinator, admin and node certificates
#   DIR/repo/                     the repository; DIR/dagvault/passphrase its secret
#   DIR/dagvault/                 coordinator.conf, agent-<node>.conf, catalog.db, logs, pids
#
# --s3 (with --dagvault) puts the repository in an S3 bucket instead: a
# single-node Ceph with radosgw started in DIR/rgw (tests/s3/ceph-rgw.sh),
# its keys in DIR/dagvault/s3.credentials (0600), the repository's URL in
# DIR/repo.url; `stop` stops radosgw too, and its repository goes with it
# (the OSD keeps objects in memory).
#
# --ha (implies --dagvault) runs it highly available (docs/ha.md): a
# three-member etcd (Debian's etcd-server; clients on P+11..P+13, peers on
# P+21..P+23, data in DIR/etcd/), a PostgreSQL catalog
# (tests/postgres/postgres.sh in DIR/postgres, kept across stop and start)
# and three coordinators on P, P+3 and P+6 (each with /metrics and the
# console on the next two ports), one leading, the others standing by;
# every agent and the command line are given all three. `status` says who
# leads. A lab started with --ha stays one: `start` without it starts the
# same engines again.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DAGVAULT_BIN:-$root/build/bin}
util=$bin/mailstore-util

usage() {
  sed -n '8,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
command=$1
shift
dir=$root/lab/mailstored
nodes=3
lag=60
log_size=
fresh=0
with_dagvault=0
coordinator_port=
with_s3=0
with_ha=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --lag-seconds) lag=$2; shift 2 ;;
    --log-size) log_size=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --dagvault) with_dagvault=1; shift ;;
    --coordinator-port) coordinator_port=$2; shift 2 ;;
    --s3) with_s3=1; shift ;;
    --ha) with_ha=1; with_dagvault=1; shift ;;
    *) echo "lab.sh: unknown argument $1" >&2; usage ;;
  esac
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ $command == start && $fresh == 0 && -f $dir/ha.enabled ]]; then with_ha=1; with_dagvault=1; fi
# The port base is the lab's: a restart keeps it (etcd members know their
# peers by it).
if [[ $command == start && $fresh == 0 && -f $dir/coordinator.port ]]; then
  kept_port=$(cat "$dir/coordinator.port")
  if [[ -n $coordinator_port && $coordinator_port != "$kept_port" && -d $dir/etcd ]]; then
    echo "lab.sh: this lab's etcd members know each other on ports from $kept_port;" \
      "start it without --coordinator-port, or with --fresh" >&2
    exit 2
  fi
  coordinator_port=${coordinator_port:-$kept_port}
fi
coordinator_port=${coordinator_port:-7180}
if [[ $command == start && $fresh == 0 && $with_ha == 1 && ! -f $dir/ha.enabled &&
  -f $dir/dagvault/coordinator.conf ]]; then
  echo "lab.sh: this lab runs one coordinator with an SQLite catalog; make it highly" \
    "available from scratch with: $0 start --fresh --ha --dir $dir" >&2
  exit 2
fi

# The pid in PIDFILE if that process runs and is PROGRAM, or nothing.
live_pid() {
  local pidfile=$1 program=$2
  [[ -f $pidfile ]] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q "$program" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"
  fi
}

# pid of a running node, or nothing.
running_pid() { live_pid "$dir/$1/mailstored.pid" mailstored; }

each_node() { [[ -f $dir/nodes.txt ]] && cat "$dir/nodes.txt"; }

start() {
  for exe in "$bin/mailstored" "$util"; do
    [[ -x $exe ]] || { echo "lab.sh: $exe is missing; build first (cmake --build build)" >&2; exit 1; }
  done
  if [[ $fresh == 1 ]]; then
    stop_dagvault quiet
    stop_nodes quiet
    stop_rgw
    stop_ha_engines
    rm -rf "${dir:?}"/node* "$dir/nodes.txt" "$dir/certs" "$dir/repo" "$dir/repo.url" \
      "$dir/repo.initialized" "$dir/dagvault" "$dir/rgw" "$dir/etcd" "$dir/postgres" \
      "$dir/ha.enabled" "$dir/coordinator.port"
  fi
  if [[ $with_dagvault == 1 && ! -f $dir/certs/ca.crt ]]; then
    "$bin/dagvault" certs init --dir "$dir/certs" >/dev/null
    # Everything listens on 127.0.0.1, which a server's certificate must
    # name (a certificate names only the hosts it is given).
    "$bin/dagvault" certs issue --dir "$dir/certs" --name coordinator --role coordinator --san 127.0.0.1 >/dev/null
    "$bin/dagvault" certs issue --dir "$dir/certs" --name admin --role admin >/dev/null
    for ((i = 1; i <= nodes; i++)); do
      "$bin/dagvault" certs issue --dir "$dir/certs" --name "node$i" --role node --san 127.0.0.1 >/dev/null
    done
    echo "certificates in $dir/certs (CA, coordinator, admin, node1..node$nodes)"
  fi
  if [[ ! -f $dir/nodes.txt ]]; then
    local args=(lab-config --dir "$dir" --nodes "$nodes" --lag-seconds "$lag")
    [[ -n $log_size ]] && args+=(--log-size "$log_size")
    [[ -f $dir/certs/ca.crt ]] && args+=(--certs "$dir/certs")
    "$util" "${args[@]}" >"$dir/nodes.txt.tmp"
    mv "$dir/nodes.txt.tmp" "$dir/nodes.txt"
  fi
  while read -r name store replication config; do
    if [[ -n $(running_pid "$name") ]]; then
      echo "$name already running (pid $(running_pid "$name"))"
      continue
    fi
    "$bin/mailstored" --config "$config" --log-file "$dir/$name/mailstored.log" \
      >"$dir/$name/stdout.log" 2>&1 &
    echo $! >"$dir/$name/mailstored.pid"
    echo "$name started (pid $!): store $store, replication $replication"
  done < <(each_node)
  # Ready: every node answers, and node1's active copies are mounted (an
  # active copy waits until another copy confirms it was not superseded).
  local deadline=$((SECONDS + 60))
  while read -r name store _ _; do
    until "$util" status --server "$store" >/dev/null 2>&1; do
      if [[ -z $(running_pid "$name") ]]; then
        echo "lab.sh: $name exited; its log says:" >&2
        tail -n 20 "$dir/$name/mailstored.log" "$dir/$name/stdout.log" >&2 || true
        exit 1
      fi
      (( SECONDS < deadline )) || { echo "lab.sh: $name did not answer within 60 s" >&2; exit 1; }
      sleep 0.2
    done
  done < <(each_node)
  local first
  first=$(head -n 1 "$dir/nodes.txt" | awk '{print $2}')
  # Two units (SG01, DB02), so two mounted active copies.
  until [[ $("$util" status --server "$first" --json | grep -o '"MOUNTED"' | wc -l) -ge 2 ]]; do
    (( SECONDS < deadline )) || { echo "lab.sh: the active copies did not mount within 60 s" >&2; exit 1; }
    sleep 0.2
  done
  echo "lab ready in $dir; export MAILSTORE_SERVER=$first"
  if [[ $with_dagvault == 1 ]]; then start_dagvault; fi
}

# pid of the running coordinator or agent-<node>, or nothing.
dagvault_pid() { live_pid "$dir/dagvault/$1.pid" dagvault; }

start_dagvault() {
  local dv=$dir/dagvault
  mkdir -p "$dv"
  echo "$coordinator_port" >"$dir/coordinator.port"
  if [[ ! -f $dv/passphrase ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 >"$dv/passphrase")
  fi
  if [[ $with_s3 == 1 && ! -f $dir/repo.url ]]; then
    # A bucket on a radosgw of the lab's own; the keys go in a 0600 file
    # that the URL names (never in the URL itself).
    mkdir -p "$dir/rgw"
    "$root/tests/s3/ceph-rgw.sh" start "$dir/rgw" >"$dir/rgw/started.env"
    local endpoint key secret bucket region
    endpoint=$(sed -n 's/^DAGVAULT_S3_ENDPOINT=//p' "$dir/rgw/started.env")
    key=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$dir/rgw/started.env")
    secret=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$dir/rgw/started.env")
    bucket=$(sed -n 's/^DAGVAULT_S3_BUCKET=//p' "$dir/rgw/started.env")
    region=$(sed -n 's/^DAGVAULT_S3_REGION=//p' "$dir/rgw/started.env")
    (umask 077 && printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
      "$key" "$secret" >"$dv/s3.credentials")
    echo "s3://$bucket/lab?endpoint=$endpoint&region=$region&credentials=$dv/s3.credentials" \
      >"$dir/repo.url"
  fi
  local repo=$dir/repo initialized=0
  if [[ -f $dir/repo.url ]]; then
    repo=$(cat "$dir/repo.url")
    [[ -f $dir/repo.initialized ]] && initialized=1
  elif [[ -d $dir/repo ]]; then
    initialized=1
  fi
  if [[ $initialized == 0 ]]; then
    "$bin/dagvault" repo init --repo "$repo" --passphrase-file "$dv/passphrase" >/dev/null
    touch "$dir/repo.initialized"
    echo "repository $repo (its passphrase: $dv/passphrase)"
  fi
  local names=(coordinator) ports=("$coordinator_port") catalog=$dv/catalog.db etcd_conf=
  if [[ $with_ha == 1 ]]; then
    touch "$dir/ha.enabled"
    start_etcd
    start_postgres
    catalog=$(sed -n "s/^DAGVAULT_TEST_POSTGRES='\(.*\)'$/\1/p" "$dir/postgres/env")
    etcd_conf="etcd { prefix: \"/dagvault-lab/\""
    local i
    for i in 1 2 3; do etcd_conf+=" endpoints: \"127.0.0.1:$((coordinator_port + 10 + i))\""; done
    etcd_conf+=" }"
    names=(coordinator-1 coordinator-2 coordinator-3)
    ports=("$coordinator_port" $((coordinator_port + 3)) $((coordinator_port + 6)))
  fi
  local addresses=() k
  for k in "${!names[@]}"; do
    local name=${names[$k]} port=${ports[$k]}
    addresses+=("127.0.0.1:$port")
    cat >"$dv/$name.conf" <<CONF
listen: "127.0.0.1:$port"
tls { ca_file: "$dir/certs/ca.crt" cert_file: "$dir/certs/coordinator.crt" key_file: "$dir/certs/coordinator.key" }
catalog: "$catalog"
repository: "$repo"
passphrase_file: "$dv/passphrase"
metrics { listen: "127.0.0.1:$((port + 1))" }
console { listen: "127.0.0.1:$((port + 2))" }
$etcd_conf
CONF
    if [[ -z $(dagvault_pid "$name") ]]; then
      "$bin/dagvault-coordinator" --config "$dv/$name.conf" --log-file "$dv/$name.log" \
        >"$dv/$name.out" 2>&1 &
      echo $! >"$dv/$name.pid"
    fi
  done
  local address
  address=$(IFS=,; echo "${addresses[*]}")
  export DAGVAULT_COORDINATOR=$address DAGVAULT_CERTS=$dir/certs
  local deadline=$((SECONDS + 30))
  # Answering: `policy list` succeeds (`status` also fails while a unit is
  # outside its RPO); with several coordinators, through the one that leads.
  until "$bin/dagvault" policy list >/dev/null 2>&1; do
    local alive=0
    for name in "${names[@]}"; do [[ -n $(dagvault_pid "$name") ]] && alive=1; done
    if [[ $alive == 0 ]]; then
      echo "lab.sh: the coordinator exited:" >&2
      tail -n 20 "$dv/${names[0]}.out" "$dv/${names[0]}.log" >&2 || true
      exit 1
    fi
    (( SECONDS < deadline )) || { echo "lab.sh: no coordinator answered within 30 s" >&2; exit 1; }
    sleep 0.2
  done
  for k in "${!names[@]}"; do
    echo "${names[$k]} started (pid $(dagvault_pid "${names[$k]}")) on ${addresses[$k]}"
  done
  [[ $with_ha == 1 ]] && "$bin/dagvault" status --leader
  # The other coordinators, one line each, before the tls line.
  local more= address_k
  for address_k in "${addresses[@]:1}"; do more+="more_coordinators: \"$address_k\""$'\n'; done
  while read -r name _ _ config; do
    local socket
    socket=$(sed -n 's/^writer_socket: "\(.*\)"$/\1/p' "$config")
    cat >"$dv/agent-$name.conf" <<CONF
node: "$name"
coordinator: "${addresses[0]}"
${more}tls { ca_file: "$dir/certs/ca.crt" cert_file: "$dir/certs/$name.crt" key_file: "$dir/certs/$name.key" }
writer_socket: "$socket"
repository: "$repo"
passphrase_file: "$dv/passphrase"
state_dir: "$dv/agent-state-$name"
CONF
    if [[ -z $(dagvault_pid "agent-$name") ]]; then
      "$bin/dagvault-agent" --config "$dv/agent-$name.conf" --log-file "$dv/agent-$name.log" \
        >"$dv/agent-$name.out" 2>&1 &
      echo $! >"$dv/agent-$name.pid"
    fi
    echo "agent of $name started (pid $(dagvault_pid "agent-$name"))"
  done < <(each_node)
  # Ready when every node reports.
  until [[ $("$bin/dagvault" status --nodes --json | grep -c '"reporting": true') -ge $(wc -l <"$dir/nodes.txt") ]]; do
    (( SECONDS < deadline + 30 )) || { echo "lab.sh: the agents did not report within 60 s" >&2; exit 1; }
    sleep 0.2
  done
  echo "deployment ready; export DAGVAULT_COORDINATOR=$address DAGVAULT_CERTS=$dir/certs"
}

# pid of the running etcd member N (1..3), or nothing.
etcd_pid() { live_pid "$dir/etcd/etcd$1.pid" etcd; }

start_etcd() {
  command -v etcd >/dev/null ||
    { echo "lab.sh: etcd is missing (deploy/install-deps.sh installs etcd-server)" >&2; exit 1; }
  mkdir -p "$dir/etcd"
  local i cluster= endpoints=
  for i in 1 2 3; do
    cluster+="${cluster:+,}etcd$i=http://127.0.0.1:$((coordinator_port + 20 + i))"
    endpoints+="${endpoints:+,}127.0.0.1:$((coordinator_port + 10 + i))"
  done
  for i in 1 2 3; do
    [[ -n $(etcd_pid "$i") ]] && continue
    local client=http://127.0.0.1:$((coordinator_port + 10 + i))
    local peer=http://127.0.0.1:$((coordinator_port + 20 + i))
    # On a data folder of its own, etcd ignores the initial-cluster flags.
    etcd --name "etcd$i" --data-dir "$dir/etcd/etcd$i.data" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token dagvault-lab --logger zap --log-outputs "$dir/etcd/etcd$i.log" \
      >"$dir/etcd/etcd$i.out" 2>&1 &
    echo $! >"$dir/etcd/etcd$i.pid"
  done
  local deadline=$((SECONDS + 60))
  until ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { echo "lab.sh: etcd was not healthy within 60 s" >&2; exit 1; }
    sleep 0.3
  done
  echo "etcd (3 members) on $endpoints"
}

start_postgres() {
  mkdir -p "$dir/postgres"
  # PostgreSQL runs as the user postgres, which must reach its folder.
  chmod o+x "$dir"
  if ! grep -q POSTGRES_PID "$dir/postgres/env" 2>/dev/null ||
    ! kill -0 "$(sed -n 's/^POSTGRES_PID=//p' "$dir/postgres/env")" 2>/dev/null; then
    KEEP_DATA=1 "$root/tests/postgres/postgres.sh" start "$dir/postgres" >/dev/null
  fi
  echo "PostgreSQL catalog: $(sed -n "s/^DAGVAULT_TEST_POSTGRES='\(.*\)'$/\1/p" "$dir/postgres/env")"
}

stop_ha_engines() {
  if [[ -d $dir/postgres ]]; then
    KEEP_DATA=1 "$root/tests/postgres/postgres.sh" stop "$dir/postgres" >/dev/null 2>&1 || true
  fi
  local i pid
  for i in 1 2 3; do
    pid=$(etcd_pid "$i")
    [[ -n $pid ]] || continue
    kill -TERM "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < 100 )); do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/etcd/etcd$i.pid"
  done
}

stop_rgw() {
  if [[ -f $dir/rgw/started.env ]]; then
    "$root/tests/s3/ceph-rgw.sh" stop "$dir/rgw" >/dev/null 2>&1 || true
    rm -f "$dir/rgw/started.env" "$dir/repo.url" "$dir/repo.initialized"
  fi
}

stop_dagvault() {
  local quiet=${1:-}
  [[ -d $dir/dagvault ]] || return 0
  local pidfile
  for pidfile in "$dir"/dagvault/*.pid; do
    [[ -f $pidfile ]] || continue
    local name pid
    name=$(basename "$pidfile" .pid)
    pid=$(dagvault_pid "$name")
    if [[ -n $pid ]]; then
      kill -TERM "$pid"
      local waited=0
      while kill -0 "$pid" 2>/dev/null && (( waited < 100 )); do sleep 0.1; waited=$((waited + 1)); done
      kill -KILL "$pid" 2>/dev/null || true
      [[ -n $quiet ]] || echo "$name stopped"
    fi
    rm -f "$pidfile"
  done
}

stop_nodes() {
  local quiet=${1:-}
  local pids=()
  while read -r name _ _ _; do
    local pid
    pid=$(running_pid "$name")
    if [[ -n $pid ]]; then
      kill -TERM "$pid"
      pids+=("$name:$pid")
    fi
  done < <(each_node || true)
  for entry in "${pids[@]}"; do
    local name=${entry%%:*} pid=${entry##*:}
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
      if (( waited >= 300 )); then
        echo "lab.sh: $name (pid $pid) did not stop within 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    rm -f "$dir/$name/mailstored.pid"
    [[ -n $quiet ]] || echo "$name stopped"
  done
}

status() {
  [[ -f $dir/nodes.txt ]] || { echo "no lab in $dir (start one with: $0 start --dir $dir)"; exit 1; }
  local any=
  while read -r name store _ _; do
    local pid
    pid=$(running_pid "$name")
    if [[ -n $pid ]]; then
      echo "$name running (pid $pid), store $store"
      any=${any:-$store}
    else
      echo "$name stopped"
    fi
  done < <(each_node)
  if [[ -n $any ]]; then
    echo
    "$util" status --server "$any"
  fi
  if [[ -f $dir/ha.enabled ]]; then
    echo
    local i pid addresses
    for i in 1 2 3; do
      pid=$(etcd_pid "$i")
      if [[ -n $pid ]]; then echo "etcd$i running (pid $pid)"; else echo "etcd$i stopped"; fi
    done
    addresses=$(sed -n 's/^listen: "\(.*\)"$/\1/p' "$dir"/dagvault/coordinator-*.conf | paste -sd,)
    DAGVAULT_COORDINATOR=$addresses DAGVAULT_CERTS=$dir/certs "$bin/dagvault" status --leader ||
      true
  fi
}

case $command in
  start) start ;;
  stop) stop_dagvault; stop_nodes; stop_rgw; stop_ha_engines ;;
  status) status ;;
  env) echo "export MAILSTORE_SERVER=$(head -n 1 "$dir/nodes.txt" | awk '{print $2}')" ;;
  *) usage ;;
esac
