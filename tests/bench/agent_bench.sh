#!/bin/bash
# The agent benchmark (issue 5): a one-node mailstored lab on a
# loop-mounted XFS (so the reflink provider can clone), its unit DB02 grown
# to GIB of .edb, then dagvault-agent's jobs in local mode. Prints figures;
# never fails on speed.
#
#   tests/bench/agent_bench.sh [GIB]   (default 4; needs about 5×GIB + 4 GiB free)
#
# Figures:
#   - the freeze window with the reflink and with the copy provider;
#   - a Full's read rate against `dagvault repo backup` of the same files
#     (the repository's write path alone, without the inline check): the
#     ratio is the throughput target, the difference what the check costs;
#   - an Incremental's rate;
#   - a second Full after about 2% new data: bytes stored and time against
#     the first;
#   - restore and replay rates, as a Recovery Database of the Full plus the
#     Incremental.
# Each timed step starts with cold caches (root).
set -euo pipefail
cd "$(dirname "$0")/../.."
GIB=${1:-4}
WORK=${DAGVAULT_BENCH_DIR:-/var/tmp/dagvault-agent-bench}
BIN=$PWD/build/bin
command -v mkfs.xfs >/dev/null && command -v jq >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq xfsprogs jq >/dev/null; }
ninja -C build dagvault dagvault-agent mailstored mailstore-util >/dev/null

cleanup() {
  deploy/lab/lab.sh stop --dir "$WORK/xfs/lab" >/dev/null 2>&1 || true
  umount "$WORK/xfs" 2>/dev/null || true
  rm -rf "$WORK"
}
cleanup
trap cleanup EXIT
mkdir -p "$WORK/xfs"
truncate -s $((GIB * 5 + 4))G "$WORK/xfs.img"
mkfs.xfs -q -m reflink=1 "$WORK/xfs.img"
mount -o loop "$WORK/xfs.img" "$WORK/xfs"

cold() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches || true; }
export DAGVAULT_PASSPHRASE=bench-passphrase
LAB=$WORK/xfs/lab
deploy/lab/lab.sh start --fresh --dir "$LAB" --nodes 1 --log-size 1048576 >/dev/null
read -r _ STORE _ _ < <(sed -n 1p "$LAB/nodes.txt")
SOCKET=$LAB/node1/writer.sock
UNIT_DIR=$LAB/node1/data/DB02
EDB=$UNIT_DIR/DB02.edb
REPO=$WORK/xfs/repo
$BIN/dagvault repo init --repo "$REPO" >/dev/null
agent() { $BIN/dagvault-agent "$@" --repo "$REPO" --writer-socket "$SOCKET" --json 2>/dev/null; }
# A job's JSON field.
field() { jq -r ".$2" <<<"$1"; }
mib_s() { awk "BEGIN{printf \"%.1f\", $1 / 1048576 / ($2 / 1000)}"; }

echo "growing DB02 to ${GIB} GiB of .edb (mail-like items of 75 KiB to 1 MiB)..."
target=$((GIB << 30))
while (( $(stat -c %s "$EDB") < target )); do
  $BIN/mailstore-util load --server "$STORE" --unit DB02 --duration 20 --threads 8 \
    --mailboxes 200 --size-mix 75k:50,1m:50 >/dev/null
  # A Full now and then lets the logs be truncated, so the disk holds them.
  agent backup --unit DB02 --type full --snapshot reflink >/dev/null
  printf '  %s MiB\n' $(( $(stat -c %s "$EDB") >> 20 ))
done
$BIN/mailstore-util roll --server "$STORE" --unit DB02 >/dev/null
rm -rf "$REPO" && $BIN/dagvault repo init --repo "$REPO" >/dev/null
EDB_BYTES=$(stat -c %s "$EDB")

cold
full=$(agent backup --unit DB02 --type full --snapshot reflink)
FULL_MS=$(field "$full" transfer_ms)
FULL_BYTES=$(field "$full" logical_bytes)
FULL_NEW=$(field "$full" new_bytes)

# The repository's write path alone, on the same files: cloned aside while
# nothing writes (no load runs now), backed up into a fresh repository.
mkdir -p "$WORK/xfs/same/logs"
cp --reflink=always "$EDB" "$WORK/xfs/same/"
files=(--file "database:$WORK/xfs/same/DB02.edb")
for g in $(jq -r '"\(.low_generation) \(.high_generation)"' <<<"$full" | awk '{for(i=$1;i<=$2;i++) printf "%08X\n", i}'); do
  cp --reflink=always "$UNIT_DIR/logs/E01$g.log" "$WORK/xfs/same/logs/" &&
    files+=(--file "log:$WORK/xfs/same/logs/E01$g.log:logs/E01$g.log")
done
$BIN/dagvault repo init --repo "$WORK/xfs/plain" >/dev/null
cold
s=$(date +%s%N)
$BIN/dagvault repo backup --repo "$WORK/xfs/plain" --unit DB02 "${files[@]}" >/dev/null
PLAIN_MS=$(( ($(date +%s%N) - s) / 1000000 ))
rm -rf "$WORK/xfs/same" "$WORK/xfs/plain"

cold
copy=$(agent backup --unit DB02 --type copy --snapshot copy --freeze-timeout-seconds 20 ||
  echo '{"error":"failed"}')

# About 2% of the database's size in new items, then an Incremental and a
# second Full.
$BIN/mailstore-util load --server "$STORE" --unit DB02 --duration 2 --threads 2 \
  --mailboxes 200 --size-mix 75k:100 --rate $(( EDB_BYTES / 50 / 76800 / 2 )) >/dev/null
$BIN/mailstore-util roll --server "$STORE" --unit DB02 >/dev/null
cold
inc=$(agent backup --unit DB02 --type incremental --snapshot reflink)
cold
full2=$(agent backup --unit DB02 --type full --snapshot reflink)

cold
restore=$(agent restore --unit DB02 --to-generation "$(field "$inc" high_generation)" \
  --rdb DB02-BENCH --path "$WORK/xfs/rdb" --mount)
INC_LOG_BYTES=$(field "$inc" logical_bytes)

echo
echo "agent benchmark: DB02 with a $((EDB_BYTES >> 20)) MiB .edb, one node, loop-mounted XFS, $(nproc) cores"
printf '%-44s %s\n' \
  "freeze window, reflink (Full)" "$(field "$full" freeze_window_ms) ms" \
  "freeze window, copy (Copy backup)" "$(jq -r 'if .error then "failed: \(.error)" else "\(.freeze_window_ms) ms" end' <<<"$copy")" \
  "Full: read, checked and stored" "$((FULL_BYTES >> 20)) MiB in ${FULL_MS} ms = $(mib_s "$FULL_BYTES" "$FULL_MS") MiB/s" \
  "repo backup of the same files (no check)" "${PLAIN_MS} ms = $(mib_s "$FULL_BYTES" "$PLAIN_MS") MiB/s" \
  "Full rate / repo rate (target >= 0.8)" "$(awk "BEGIN{printf \"%.2f\", $PLAIN_MS / $FULL_MS}")" \
  "inline check's cost (Full - repo) / repo" "$(awk "BEGIN{printf \"%.1f%%\", ($FULL_MS - $PLAIN_MS) * 100 / $PLAIN_MS}")" \
  "Full: pages checked" "$(field "$full" verified_pages)" \
  "Incremental: logs" "$((INC_LOG_BYTES >> 20)) MiB in $(field "$inc" transfer_ms) ms = $(mib_s "$INC_LOG_BYTES" "$(field "$inc" transfer_ms)") MiB/s" \
  "second Full: new bytes / first Full's" "$(field "$full2" new_bytes) / $FULL_NEW = $(awk "BEGIN{printf \"%.2f%%\", $(field "$full2" new_bytes) * 100 / $FULL_NEW}") (target <= 4%)" \
  "second Full: time / first Full's" "$(field "$full2" transfer_ms) / $FULL_MS ms = $(awk "BEGIN{printf \"%.2f\", $(field "$full2" transfer_ms) / $FULL_MS}") (target <= 0.5)" \
  "restore (Full + Incremental) as an RDB" "$(( $(field "$restore" bytes) >> 20 )) MiB in $(field "$restore" transfer_ms) ms = $(mib_s "$(field "$restore" bytes)" "$(field "$restore" transfer_ms)") MiB/s" \
  "replay of the Incremental's logs, and mount" "$((INC_LOG_BYTES >> 20)) MiB in $(field "$restore" replay_ms) ms = $(mib_s "$INC_LOG_BYTES" "$(field "$restore" replay_ms)") MiB/s"
