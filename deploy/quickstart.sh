#!/usr/bin/env bash
# dagvault quickstart: installs what is missing, builds, and walks through
# the product end to end: a 3-node lab of mailstored (the protected mail
# server) with log-shipping replication over mutual TLS, under load, with a
# passive copy killed and restarted, converging; the coordinator and its
# agents back up a unit from the right copies and show the chain; then the
# unit is wiped on its active server, restored to every copy, and digests
# prove that every copy holds the restore point's data.
#
#   ./deploy/quickstart.sh            run it; the lab is stopped at the end
#   ./deploy/quickstart.sh --keep     leave the lab running in ./lab/quickstart
#   ./deploy/quickstart.sh --s3       the repository in an S3 bucket on a radosgw of its own
#   DAGVAULT_LAB_DIR=/path ./deploy/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
keep=0
lab_args=()
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    --s3) lab_args+=(--s3) ;;
    *) echo "usage: $0 [--keep] [--s3]" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Installing packages (only what is missing)"
./deploy/install-deps.sh

step "2. Building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target mailstored mailstore-util dagvault dagvault-agent \
  dagvault-coordinator
util=$root/build/bin/mailstore-util

lab=${DAGVAULT_LAB_DIR:-$root/lab/quickstart}
lag=15
step "3. Starting a 3-node lab in $lab"
echo "Units SG01 (storage group: MDB01A, MDB01B) and DB02, a copy of each on every node;"
echo "node1 holds the active copies, node3's copies replay ${lag}s behind (lagged)."
echo "With --dagvault: a CA and certificates (replication runs over mutual TLS), a"
echo "repository, a dagvault-coordinator and a dagvault-agent on every node."
if ((${#lab_args[@]})); then
  echo "With --s3: the repository is in an S3 bucket on a single-node Ceph (radosgw) started"
  echo "for the lab; its keys in a 0600 file the repository URL names."
fi
./deploy/lab/lab.sh start --fresh --dir "$lab" --nodes 3 --lag-seconds "$lag" --log-size 262144 \
  --dagvault "${lab_args[@]}"
read -r _ node1 _ _ < <(sed -n 1p "$lab/nodes.txt")
read -r _ node2 _ _ < <(sed -n 2p "$lab/nodes.txt")
read -r _ node3 _ _ < <(sed -n 3p "$lab/nodes.txt")
export MAILSTORE_SERVER=$node1

step "4. Load: 10 s of mail items (4 KiB to 1 MiB) into both units; node2 killed with kill -9 at 4 s"
"$util" load --unit SG01 --unit DB02 --duration 10 --threads 4 --mailboxes 50 \
  --size-mix 4k:70,75k:25,1m:5 &
load=$!
for t in 2 4 6 8 10; do
  sleep 2
  if [[ $t == 4 ]]; then
    kill -9 "$(cat "$lab/node2/mailstored.pid")"
    echo "   t=${t}s  node2 killed"
  fi
  if [[ $t == 6 ]]; then
    ./deploy/lab/lab.sh start --dir "$lab" | grep node2 | sed 's/^/   /'
  fi
  "$util" status --unit SG01 --json | awk -v t="$t" '
    /"node":/ { gsub(/[",]/, "", $2); node = $2 }
    /"state":/ { gsub(/[",]/, "", $2); state = $2 }
    /"copy_queue":/ { gsub(/,/, "", $2); cq = $2 }
    /"replay_queue":/ { gsub(/,/, "", $2); printf "   t=%ss  SG01 %s %-10s copy queue %3s  replay queue %3s\n", t, node, state, cq, $2 }'
done
wait "$load"

step "5. Status, as node1 sees every copy"
"$util" status

step "6. The passive copies converge: digests of every database on each node"
same_as_node1() {  # $1 = node's store address; true when its digests equal node1's
  for unit in SG01 DB02; do
    [[ "$("$util" digest --server "$node1" --unit $unit | awk '{print $1, $2, $4, $6}')" == \
       "$("$util" digest --server "$1" --unit $unit | awk '{print $1, $2, $4, $6}')" ]] || return 1
  done
}
for unit in SG01 DB02; do "$util" roll --unit $unit >/dev/null; done
since=$SECONDS
until same_as_node1 "$node2"; do
  (( SECONDS - since < 120 )) || { echo "node2 did not converge within 120 s" >&2; exit 1; }
  sleep 0.5
done
echo "node2 (restarted after kill -9) equals node1 after $((SECONDS - since))s:"
"$util" digest --server "$node2" --unit SG01
"$util" digest --server "$node2" --unit DB02
if same_as_node1 "$node3"; then
  echo "node3 (lagged) equals node1 already"
else
  echo "node3 is lagged by ${lag}s and still behind; waiting for it..."
  since=$SECONDS
  until same_as_node1 "$node3"; do
    (( SECONDS - since < lag + 120 )) || { echo "node3 did not converge" >&2; exit 1; }
    sleep 0.5
  done
  echo "node3 equals node1 after $((SECONDS - since))s more"
fi

dv=$root/build/bin/dagvault
export DAGVAULT_COORDINATOR=127.0.0.1:7180 DAGVAULT_CERTS=$lab/certs

step "7. The coordinator's view: every node reporting, the copies that need attention"
"$dv" status

step "8. Backups chosen by the coordinator: a Full from a healthy passive copy, then an Incremental from the active one"
"$dv" backup start --unit SG01 --type full --wait
"$util" load --unit SG01 --duration 3 --threads 2 --mailboxes 10 --size-mix 4k:80,75k:20 >/dev/null
"$util" roll --unit SG01 >/dev/null
"$dv" backup start --unit SG01 --type incremental --source-mode active-only --wait

step "9. One chain across two servers, with its restore points"
"$dv" chain show --unit SG01
"$dv" backup list
# The newest restore point's data: nothing was written since the Incremental.
digests_of() {  # $1 = store address: SG01's databases, digest and item count
  "$util" digest --server "$1" --unit SG01 | awk '{print $1, $2, $4, $6}'
}
restore_point=$(digests_of "$node1")
echo "SG01 at the newest restore point:"
echo "$restore_point" | sed 's/^/   /'

step "10. A disaster: more mail arrives, then SG01 is lost on node1 (dismounted, every file deleted)"
"$util" load --unit SG01 --duration 2 --threads 2 --mailboxes 10 --size-mix 4k:100 >/dev/null
echo "   new mail written after the backup: SG01 on node1 is now"
digests_of "$node1" | sed 's/^/      /'
"$util" dismount --unit SG01 >/dev/null
find "$lab/node1/data/SG01" -mindepth 1 -maxdepth 1 ! -name copy.state -exec rm -rf {} +
echo "   $lab/node1/data/SG01: $(ls "$lab/node1/data/SG01" | tr '\n' ' ')"

step "11. Restore SG01 to every copy: the coordinator's seven recorded steps"
restored=$("$dv" restore start --unit SG01 --to latest --wait)
echo "$restored" | sed 's/^/   /'
# Step 5 ran beside steps 3-4: each passive copy was restored from the
# repository by its own agent, not reseeded from node1 afterwards.
for passive in node2 node3; do
  if ! grep -q "$passive: restored from the repository" <<<"$restored"; then
    echo "   $passive was not restored from the repository (see step 5 above)" >&2
    exit 1
  fi
done

step "12. Proof: every copy holds the restore point's data"
for node in "$node1" "$node2" "$node3"; do
  got=$(digests_of "$node")
  if [[ "$got" == "$restore_point" ]]; then
    echo "   $node: the restore point's digests"
  else
    echo "   $node differs from the restore point:" >&2
    echo "$got" >&2
    exit 1
  fi
done

step "13. A user's mail back: mailbox 3 of SG01 exported from the newest restore point"
# A Recovery Database on a node with a healthy passive copy, the mailbox's
# items written to files there, the Recovery Database removed.
rm -rf "$lab/export"
"$dv" restore items --unit SG01 --mailbox 3 --export "$lab/export" --wait | sed 's/^/   /'
python3 - "$lab/export" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
index = json.load(open(os.path.join(root, "index.json")))
items = index.get("items", [])
for e in items:
    data = open(os.path.join(root, e["file"]), "rb").read()
    if hashlib.sha256(data).hexdigest() != e["sha256"]:
        sys.exit(f"   {e['file']} does not match the index")
if not items:
    sys.exit("   the export holds no item")
print(f"   {len(items)} items of mailbox 3 in {root}, each file's SHA-256 equal to the index's")
PY

step "14. An RPO and restore verification: SG01 follows a nightly policy (restore points at most 26 hours old, verified at 05:00), and its newest restore point is verified now"
"$dv" policy set --name nightly --unit SG01 --full '30 1 * * 0' --incremental '30 1 * * 1-6' --rpo 26h \
  --verify '0 5 * * *'
"$dv" status --unit SG01
# Restored as a Recovery Database off production, checked deeply, mounted,
# read, removed; the result is kept with the restore point.
"$dv" restore verify --unit SG01 --wait | sed 's/^/   /'
"$dv" chain show --unit SG01 | grep -E 'restore points|verified' | sed 's/^/   /'

step "15. The web console: a sign-in token for the admin certificate, and the console answering with it"
login=$("$dv" console login --ttl 12h)
token=$(sed -n 's/.*#\/overview?token=\([A-Za-z0-9_-]*\).*/\1/p' <<<"$login" | head -n 1)
console_url=https://127.0.0.1:7182/
python3 - "$lab/certs/ca.crt" "$token" <<'PY'
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
request = urllib.request.Request("https://127.0.0.1:7182/api/v1/GetStatus",
                                 data=b'{"all_units": true, "all_nodes": true}',
                                 headers={"Authorization": "Bearer " + sys.argv[2],
                                          "Content-Type": "application/json"})
status = json.load(urllib.request.urlopen(request, context=context, timeout=10))
units = ", ".join(f"{u['unit']} {u['state']}" for u in status.get("units", []))
print(f"   the console's API answers: {len(status.get('nodes', []))} nodes; units: {units}")
PY

elapsed=$(( $(date +%s) - started ))
cat <<DONE

== Done in ${elapsed}s. What happened:
   - built mailstored and mailstore-util (build/bin) and started three mailstored
     processes (logs and data in $lab/node*);
   - the load generator wrote through node1's store API while node1 shipped each
     closed log generation to node2 and node3, which inspected and replayed them;
   - node2 was killed with kill -9 while it replicated, restarted, and caught up; the
     lagged node3 replayed ${lag}s behind; every copy ended with node1's digests;
   - the coordinator chose node2's healthy passive copy for the Full (node3 is lagged,
     node1 active), node1 for the Incremental; both were verified page by page and log by
     log as they streamed into the repository, and the chain joins across the servers;
   - SG01 was wiped on node1; the restore suspended the passive copies, dismounted node1,
     then restored the chain from the repository through node1's Store writer and, at
     the same time, into node2's and node3's passive copies (each by its own agent);
     node1 replayed and mounted, replication resumed from the common restore point, and
     every copy's digests agree: they equal the restore point's;
   - mailbox 3 of SG01 came back as files from a Recovery Database that was then
     removed (docs/operator-guide.md: get a user's mail back);
   - SG01 got a nightly policy with a 26-hour RPO, and \`dagvault status\` shows it
     within its RPO (docs/monitoring.md: RPO, status, metrics and alerts);
   - the coordinator serves the web console at $console_url (docs/console.md):
     overview by RPO, the DAG's topology, chains, jobs, trends.
DONE
if (( keep == 0 )); then
  ./deploy/lab/lab.sh stop --dir "$lab" >/dev/null
  echo "   The lab is stopped. Run ./deploy/quickstart.sh --keep to leave it running, then"
  echo "   open the console: the address \`dagvault console login\` prints, in a browser that"
  echo "   trusts $lab/certs/ca.crt (or import $lab/certs/admin.crt and .key into it)."
  exit 0
fi
cat <<DONE

   The lab is still running. The web console, signed in as admin for 12 hours
   (a browser on this machine that trusts $lab/certs/ca.crt):
     $(sed -n 's/^ *\(https:.*token=.*\)$/\1/p' <<<"$login" | head -n 1)
   Try next:
     export MAILSTORE_SERVER=$node1
     $util status                                  copies, queues, truncation, backups
     $util activate --unit SG01 --node node2       switchover without loss
     $util suspend --unit DB02 --server $node2    (and resume)
     export DAGVAULT_COORDINATOR=127.0.0.1:7180 DAGVAULT_CERTS=$lab/certs
     $dv status --copies                      every copy, as the coordinator sees it
     $dv backup start --unit DB02 --type full --source-mode passive-only --wait
     $dv job list                             every job; job show ID for its events
     $dv restore start --unit DB02 --rdb DB02-RDB --node node2 --path /tmp/rdb --wait
     $dv policy set --name nightly --unit SG01 --unit DB02 --full '0 1 * * *' --keep-chains 2 --rpo 26h
     $dv status                               units outside their RPO first; exit 1 if critical
     $dv expire --dry-run                     what retention would remove
     ./deploy/lab/lab.sh stop --dir $lab
     ./tests/run.sh                                every test
   Read docs/README.md for how it all fits together.
DONE
