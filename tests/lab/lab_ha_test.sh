#!/usr/bin/env bash
# The highly available lab (deploy/lab/lab.sh start --ha, docs/ha.md) as an
# operator uses it: three etcd members, PostgreSQL, three coordinators and
# three mailstored nodes with their agents; a Full through whichever
# coordinator leads; the leader killed with -9; another leads and a second
# Full runs through it; the lab stopped and started again without --ha
# keeps its shape and its catalog.
#
#   tests/lab/lab_ha_test.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
export DAGVAULT_BIN=$build/bin
bin=$build/bin
dir=$(mktemp -d /tmp/dagvault-lab-ha.XXXXXX)
lab() { "$root/deploy/lab/lab.sh" "$@" --dir "$dir"; }
cleanup() {
  "$root/deploy/lab/lab.sh" stop --dir "$dir" >/dev/null 2>&1 || true
  [[ -n ${DAGVAULT_KEEP_LAB_TEST:-} ]] && { echo "left $dir"; return; }
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "lab_ha_test: $*" >&2
  tail -n 30 "$dir"/dagvault/coordinator-*.log >&2 || true
  exit 1
}

# The lab takes 24 ports from P (lab.sh's header): a base none of them is
# listening on.
listening=$(ss -Hltn | awk '{print $4}' | sed 's/.*://' | sort -u)
for _ in $(seq 50); do
  port=$((20000 + RANDOM % 30000))
  clash=0
  for ((p = port; p < port + 24; p++)); do
    grep -qx "$p" <<<"$listening" && { clash=1; break; }
  done
  ((clash == 0)) && break
done

echo "== starting the HA lab in $dir (ports from $port)"
lab start --nodes 3 --lag-seconds 0 --log-size 262144 --ha --coordinator-port "$port"
export DAGVAULT_COORDINATOR=127.0.0.1:$port,127.0.0.1:$((port + 3)),127.0.0.1:$((port + 6))
export DAGVAULT_CERTS=$dir/certs MAILSTORE_SERVER
MAILSTORE_SERVER=$(head -n 1 "$dir/nodes.txt" | awk '{print $2}')

leader() { "$bin/dagvault" status --leader --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])'; }
# DB02's digests on a node (mailstore-util digest), without the node's name.
digest() { "$bin/mailstore-util" digest --server "$1" --unit DB02 | awk '{print $1, $2, $4, $6}'; }
full() {
  "$bin/mailstore-util" load --unit DB02 --duration 2 --threads 2 --mailboxes 5 \
    --size-mix 4k:90,75k:10 >/dev/null
  "$bin/mailstore-util" roll --unit DB02 >/dev/null
  # Every copy replays what was written, so a passive copy qualifies.
  local since=$SECONDS store
  while read -r _ store _ _; do
    until [[ $(digest "$store") == "$(digest "$MAILSTORE_SERVER")" ]]; do
      ((SECONDS - since < 60)) || fail "$store did not converge within 60 s"
      sleep 0.3
    done
  done <"$dir/nodes.txt"
  "$bin/dagvault" backup start --unit DB02 --type full --wait ||
    fail "the Full through $(leader) failed"
}

first=$(leader)
echo "== a Full through the leader, $first"
full
pidfile=$(grep -l "listen: \"$first\"" "$dir"/dagvault/coordinator-*.conf | sed 's/\.conf$/.pid/')
[[ -f $pidfile ]] || fail "no pid file for the leader $first"
echo "== kill -9 the leader ($(basename "$pidfile" .pid), pid $(cat "$pidfile"))"
kill -9 "$(cat "$pidfile")"
killed=$(date +%s.%N)
until next=$(leader 2>/dev/null) && [[ -n $next && $next != "$first" ]]; do
  (($(date +%s) - ${killed%.*} < 60)) || fail "no coordinator led within 60 s of the kill"
  sleep 0.2
done
echo "   $next leads after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $killed}") s"
echo "== a Full through the new leader"
full
backups=$("$bin/dagvault" backup list --unit DB02 --json |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("backups", [])))')
[[ $backups == 2 ]] || fail "expected 2 backups of DB02 in the catalog, found $backups"

echo "== stop, and start again without --ha: the same shape, the same catalog"
lab stop >/dev/null
lab start >/dev/null
[[ -n $(leader) ]] || fail "nobody leads after the restart"
again=$("$bin/dagvault" backup list --unit DB02 --json |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("backups", [])))')
[[ $again == 2 ]] || fail "the catalog lost backups across the restart: $again"
lab status | grep -q "^leader: 127.0.0.1:" || fail "lab.sh status does not say who leads"
echo "lab_ha_test: passed"
