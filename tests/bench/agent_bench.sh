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
#     (the repository's write path alone, without the inline check), as
#     medians of DAGVAULT_BENCH_RUNS (3) alternating runs: the ratio is the
#     throughput target;
#   - what the inline check costs: its CPU time (the agent measures it on
#     every worker) against the rest of the transfer's, and the difference
#     of the medians;
#   - an Incremental's rate, against `repo backup` of the same logs;
#   - a second Full after about 2% new data: bytes stored and time against
#     the first (medians; each run into a reflink clone of the repository);
#   - restore and replay rates, as a Recovery Database of the Full plus the
#     Incremental;
#   - zstd's levels, and the raw-or-not sample, on the unit's .edb and logs.
# Each timed step starts with cold caches (root).
set -euo pipefail
cd "$(dirname "$0")/../.."
GIB=${1:-4}
WORK=${DAGVAULT_BENCH_DIR:-/var/tmp/dagvault-agent-bench}
BIN=$PWD/build/bin
command -v mkfs.xfs >/dev/null && command -v jq >/dev/null ||
  { apt-get update -qq && apt-get install -y -qq xfsprogs jq >/dev/null; }
ninja -C build dagvault dagvault-agent mailstored mailstore-util repository_bench_data >/dev/null

cleanup() {
  deploy/lab/lab.sh stop --dir "$WORK/xfs/lab" >/dev/null 2>&1 || true
  umount "$WORK/xfs" 2>/dev/null || true
  [ -f "$WORK/loop" ] && losetup -d "$(cat "$WORK/loop")" 2>/dev/null || true
  rm -rf "$WORK"
}
cleanup
trap cleanup EXIT
mkdir -p "$WORK/xfs"
truncate -s $((GIB * 5 + 4))G "$WORK/xfs.img"
mkfs.xfs -q -m reflink=1 "$WORK/xfs.img"
# The loop device reads and writes its image by direct I/O, so that the
# image is not cached a second time in this machine's page cache: the lab
# then sees the disk as a mail server would, and a restore's gigabytes do
# not fill memory behind the filesystem's back (which made the replay
# after it twice as slow as the same replay from a settled machine).
losetup --direct-io=on --show -f "$WORK/xfs.img" >"$WORK/loop"
mount "$(cat "$WORK/loop")" "$WORK/xfs"

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
EDB_BYTES=$(stat -c %s "$EDB")

# The Full against the repository's write path alone (`dagvault repo
# backup` of the same files, cloned aside while nothing writes, with its
# own timing: the backup, not process start or key derivation). RUNS
# alternating runs of each, each into a fresh repository with cold caches;
# the medians are compared, because one run on a shared machine moves by
# ±20%. The check's own cost is also counted directly, in CPU time.
median() { sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
plain_ms() {  # files... → the backup's own milliseconds
  rm -rf "$WORK/xfs/plain" && $BIN/dagvault repo init --repo "$WORK/xfs/plain" >/dev/null
  cold
  $BIN/dagvault repo backup --repo "$WORK/xfs/plain" --unit DB02 "$@" |
    sed -n 's/.* in \([0-9.]*\) s.*/\1/p' | awk '{printf "%.0f", $1 * 1000}'
  rm -rf "$WORK/xfs/plain"
}
# Clones the unit's .edb and sealed logs aside. Called before a backup (an
# Incremental truncates the logs it took once it succeeds) and after it (the
# freeze sealed one more log); the .edb is the same both times, as nothing
# writes.
clone_unit() {
  mkdir -p "$WORK/xfs/same/logs"
  cp --reflink=always "$EDB" "$WORK/xfs/same/"
  find "$UNIT_DIR/logs" -name 'E01????????.log' -exec cp -n --reflink=always {} "$WORK/xfs/same/logs/" \;
}
# The clones of a backup's files → --file arguments.
cloned_files() {  # JSON with_database
  local json=$1 with_db=$2
  FILES=()
  [ "$with_db" = yes ] && FILES+=(--file "database:$WORK/xfs/same/DB02.edb")
  for g in $(jq -r '"\(.low_generation) \(.high_generation)"' <<<"$json" | awk '{for(i=$1;i<=$2;i++) printf "%08X\n", i}'); do
    FILES+=(--file "log:$WORK/xfs/same/logs/E01$g.log:logs/E01$g.log")
  done
}
RUNS=${DAGVAULT_BENCH_RUNS:-3}
full_ms=() plain_full_ms=() check_share=()
for ((run = 1; run <= RUNS; run++)); do
  rm -rf "$REPO" && $BIN/dagvault repo init --repo "$REPO" >/dev/null
  rm -rf "$WORK/xfs/same" && clone_unit
  cold
  full=$(agent backup --unit DB02 --type full --snapshot reflink)
  full_ms+=("$(field "$full" transfer_ms)")
  check_share+=("$(jq '.check_cpu_ms * 100 / (.transfer_cpu_ms - .check_cpu_ms)' <<<"$full")")
  clone_unit
  cloned_files "$full" yes
  plain_full_ms+=("$(plain_ms "${FILES[@]}")")
done
FULL_MS=$(printf '%s\n' "${full_ms[@]}" | median)
PLAIN_MS=$(printf '%s\n' "${plain_full_ms[@]}" | median)
CHECK_SHARE=$(printf '%s\n' "${check_share[@]}" | median)
FULL_BYTES=$(field "$full" logical_bytes)
FULL_NEW=$(field "$full" new_bytes)
FULL_CHECK_CPU=$(field "$full" check_cpu_ms)
FULL_CPU=$(field "$full" transfer_cpu_ms)

cold
copy=$(agent backup --unit DB02 --type copy --snapshot copy --freeze-timeout-seconds 20 ||
  echo '{"error":"failed"}')

# About 2% of the database's size in new items, then an Incremental and a
# second Full.
$BIN/mailstore-util load --server "$STORE" --unit DB02 --duration 2 --threads 2 \
  --mailboxes 200 --size-mix 75k:100 --rate $(( EDB_BYTES / 50 / 76800 / 2 )) >/dev/null
$BIN/mailstore-util roll --server "$STORE" --unit DB02 >/dev/null
# zstd on the new logs, measured now: the Incremental truncates them.
# shellcheck disable=SC2046 # one argument per log file
ZSTD_LOGS=$($BIN/repository_bench_data zstd-table "DB02's logs (the Incremental's)" \
  $(find "$UNIT_DIR/logs" -name 'E01????????.log' | sort | head -256))
rm -rf "$WORK/xfs/same" && clone_unit
cold
inc=$(agent backup --unit DB02 --type incremental --snapshot reflink)
INC_MS=$(field "$inc" transfer_ms)
INC_LOG_BYTES=$(field "$inc" logical_bytes)
clone_unit
cloned_files "$inc" no
plain_inc_ms=()
for ((run = 1; run <= RUNS; run++)); do plain_inc_ms+=("$(plain_ms "${FILES[@]}")"); done
PLAIN_INC_MS=$(printf '%s\n' "${plain_inc_ms[@]}" | median)
rm -rf "$WORK/xfs/same"
# The second Full RUNS times, each into a reflink clone of the repository
# as the Incremental left it, so every run finds the same blocks stored.
full2_ms=()
for ((run = 1; run <= RUNS; run++)); do
  cp -a --reflink=always "$REPO" "$REPO.again"
  cold
  full2=$($BIN/dagvault-agent backup --unit DB02 --type full --snapshot reflink \
    --repo "$REPO.again" --writer-socket "$SOCKET" --json 2>/dev/null)
  full2_ms+=("$(field "$full2" transfer_ms)")
  rm -rf "$REPO.again"
done
FULL2_MS=$(printf '%s\n' "${full2_ms[@]}" | median)

cold
restore=$(agent restore --unit DB02 --to-generation "$(field "$inc" high_generation)" \
  --rdb DB02-BENCH --path "$WORK/xfs/rdb" --mount)

echo
echo "agent benchmark: DB02 with a $((EDB_BYTES >> 20)) MiB .edb, one node, loop-mounted XFS, $(nproc) cores"
printf '%-46s %s\n' \
  "freeze window, reflink (Full)" "$(field "$full" freeze_window_ms) ms" \
  "freeze window, copy (Copy backup)" "$(jq -r 'if .error then "failed: \(.error)" else "\(.freeze_window_ms) ms" end' <<<"$copy")" \
  "Full: read, checked and stored (median of $RUNS)" "$((FULL_BYTES >> 20)) MiB in ${FULL_MS} ms = $(mib_s "$FULL_BYTES" "$FULL_MS") MiB/s (runs: ${full_ms[*]})" \
  "repo backup of the same files (no check)" "${PLAIN_MS} ms = $(mib_s "$FULL_BYTES" "$PLAIN_MS") MiB/s (runs: ${plain_full_ms[*]})" \
  "Full rate / repo rate (target >= 0.8)" "$(awk "BEGIN{printf \"%.2f\", $PLAIN_MS / $FULL_MS}")" \
  "inline check: CPU / the rest of the transfer's" "$(printf '%.1f' "$CHECK_SHARE")% (last run: ${FULL_CHECK_CPU} of ${FULL_CPU} ms; target <= 10%)" \
  "inline check: wall (Full - repo) / repo" "$(awk "BEGIN{printf \"%.1f%%\", ($FULL_MS - $PLAIN_MS) * 100 / $PLAIN_MS}") (medians; see the runs above)" \
  "Full: pages checked" "$(field "$full" verified_pages)" \
  "Incremental: logs read, checked and stored" "$((INC_LOG_BYTES >> 20)) MiB in ${INC_MS} ms = $(mib_s "$INC_LOG_BYTES" "$INC_MS") MiB/s" \
  "repo backup of the same logs (median of $RUNS)" "${PLAIN_INC_MS} ms = $(mib_s "$INC_LOG_BYTES" "$PLAIN_INC_MS") MiB/s (runs: ${plain_inc_ms[*]})" \
  "Incremental rate / repo rate (target >= 0.8)" "$(awk "BEGIN{printf \"%.2f\", $PLAIN_INC_MS / $INC_MS}")" \
  "second Full: new bytes / first Full's" "$(field "$full2" new_bytes) / $FULL_NEW = $(awk "BEGIN{printf \"%.2f%%\", $(field "$full2" new_bytes) * 100 / $FULL_NEW}") (target <= 4%)" \
  "second Full: time / first Full's (medians)" "$FULL2_MS / $FULL_MS ms = $(awk "BEGIN{printf \"%.2f\", $FULL2_MS / $FULL_MS}") (target <= 0.5; runs: ${full2_ms[*]})" \
  "restore (Full + Incremental) as an RDB" "$(( $(field "$restore" bytes) >> 20 )) MiB in $(field "$restore" transfer_ms) ms = $(mib_s "$(field "$restore" bytes)" "$(field "$restore" transfer_ms)") MiB/s" \
  "replay of the Incremental's logs, and mount" "$((INC_LOG_BYTES >> 20)) MiB in $(field "$restore" replay_ms) ms = $(mib_s "$INC_LOG_BYTES" "$(field "$restore" replay_ms)") MiB/s (target >= 100)"
# zstd's levels on the unit's real data (issue 21): its .edb and its logs.
echo
$BIN/repository_bench_data zstd-table "DB02's .edb" "$EDB"
echo "$ZSTD_LOGS"
