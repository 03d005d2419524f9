#!/bin/bash
# The S3 benchmark (issue 17, §6): a .edb-like file backed up and restored
# by dagvault to a filesystem repository and to an S3 bucket on a radosgw
# started for the run (tests/s3/ceph-rgw.sh, memstore OSD in RAM), and by
# restic's S3 backend to the same radosgw. Prints rates, requests (counted
# in radosgw's own log: one "req done" line per request) and peak resident
# memory; never fails on speed. The restores run DAGVAULT_BENCH_RUNS (3)
# times, alternating, and their medians are printed.
#
#   tests/bench/s3_bench.sh [GIB]      (default 4; needs ~3×GIB of RAM for the OSD
#                                       and ~3×GIB free on disk)
set -euo pipefail
cd "$(dirname "$0")/../.."
GIB=${1:-4}
WORK=${DAGVAULT_BENCH_DIR:-/var/tmp/dagvault-s3-bench}
BIN=build/bin
if ! command -v restic >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get update -qq && apt-get install -y -qq restic time >/dev/null
fi
[ -x $BIN/dagvault ] && [ -x $BIN/repository_bench_data ] || {
  cmake -S . -B build -G Ninja >/dev/null && ninja -C build dagvault repository_bench_data; }
rm -rf "$WORK" && mkdir -p "$WORK/src"
RGW=$WORK/rgw
trap 'tests/s3/ceph-rgw.sh stop "$RGW" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# Each tool gets a radosgw of its own, started fresh: the in-RAM OSD grows
# with what it holds (about three times the stored bytes), and the second
# tool would otherwise pay for the first one's data.
export CEPH_RGW_MEMSTORE_BYTES=$(( (3 * GIB / 2 + 2) << 30 ))
start_rgw() {
  tests/s3/ceph-rgw.sh stop "$RGW" >/dev/null 2>&1 || true
  rm -rf "$RGW"
  echo "starting radosgw (memstore $((CEPH_RGW_MEMSTORE_BYTES >> 30)) GiB)..."
  tests/s3/ceph-rgw.sh start "$RGW" >"$WORK/rgw.env" 2>"$WORK/rgw.err"
  set -a; . "$WORK/rgw.env"; set +a
  URL="s3://$DAGVAULT_S3_BUCKET/dv?endpoint=$DAGVAULT_S3_ENDPOINT&region=$DAGVAULT_S3_REGION"
  RESTIC_REPO="s3:$DAGVAULT_S3_ENDPOINT/$DAGVAULT_S3_BUCKET/restic"
  OSD_RSS[$1]=0
}
# The OSD's resident size now, in MiB.
osd_rss() { awk '/VmRSS/{printf "%d", $2 / 1024}' "/proc/$(cat "$RGW/pids/osd.pid")/status"; }
declare -A OSD_RSS
export DAGVAULT_PASSPHRASE=bench-passphrase RESTIC_PASSWORD=bench-passphrase
SRC=$WORK/src/priv1.edb

cold() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches || true; }
requests() { cat "$RGW"/log/*rgw*.log 2>/dev/null | grep -c "req done" || true; }
# CPU time (in 10 ms ticks) of the S3 server's two busy daemons, radosgw and
# the OSD: on this machine they take cores from the tool being measured.
server_ticks() {
  local t=0 d pid
  for d in rgw osd; do
    pid=$(cat "$RGW/pids/$d.pid" 2>/dev/null) || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
declare -A T R Q S
# timed NAME CMD...: from cold caches; seconds, peak RSS (KiB), requests.
timed() {
  local name=$1; shift
  cold
  local q0 c0 s e
  q0=$(requests)
  c0=$(server_ticks)
  s=$(date +%s.%N)
  /usr/bin/time -o "$WORK/$name.rss" -f %M "$@" >"$WORK/$name.out" 2>&1 ||
    { echo "$name failed:"; cat "$WORK/$name.out"; exit 1; }
  e=$(date +%s.%N)
  T[$name]=$(awk "BEGIN{printf \"%.2f\", $e - $s}")
  R[$name]=$(tail -1 "$WORK/$name.rss")
  Q[$name]=$(( $(requests) - q0 ))
  S[$name]=$(awk "BEGIN{printf \"%.1f\", ($(server_ticks) - $c0) / 100}")
}

echo "making a ${GIB} GiB .edb-like file (8 KiB pages, half text, half random)..."
$BIN/repository_bench_data make "$SRC" "$GIB" 1
BYTES=$(stat -c %s "$SRC")

$BIN/dagvault repo init --repo "$WORK/dv" >/dev/null
timed fs_backup $BIN/dagvault repo backup --repo "$WORK/dv" --unit DB01 --file "database:$SRC"
fs_id=$($BIN/dagvault repo ls --repo "$WORK/dv" | awk 'NR==2{print $1}')

start_rgw dagvault
$BIN/dagvault repo init --repo "$URL" >/dev/null
timed s3_backup $BIN/dagvault repo backup --repo "$URL" --unit DB01 --file "database:$SRC"
s3_id=$($BIN/dagvault repo ls --repo "$URL" | awk 'NR==2{print $1}')
# A restore leaves its repository as it was, so the two restores run RUNS
# times, alternating, and are compared by their medians: one run of each
# moves by a quarter from one minute to the next on a shared machine.
RUNS=${DAGVAULT_BENCH_RUNS:-3}
median() { sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
declare -A RUN_TIMES
for ((run = 1; run <= RUNS; run++)); do
  timed fs_restore_$run $BIN/dagvault repo restore "$fs_id" --repo "$WORK/dv" --to "$WORK/out-fs"
  cmp "$SRC" "$WORK/out-fs/priv1.edb" && rm -rf "$WORK/out-fs"
  timed s3_restore_$run $BIN/dagvault repo restore "$s3_id" --repo "$URL" --to "$WORK/out-s3"
  cmp "$SRC" "$WORK/out-s3/priv1.edb" && rm -rf "$WORK/out-s3"
done
rm -rf "$WORK/dv"
for step in fs_restore s3_restore; do
  for key in T R Q S; do
    declare -n figures=$key
    figures[$step]=$(for ((run = 1; run <= RUNS; run++)); do echo "${figures[${step}_$run]}"; done |
      median)
  done
  RUN_TIMES[$step]=$(for ((run = 1; run <= RUNS; run++)); do echo -n "${T[${step}_$run]} "; done)
done
timed s3_check $BIN/dagvault repo check --repo "$URL" --read-data
OSD_RSS[dagvault]=$(osd_rss)

start_rgw restic
restic init -q --repo "$RESTIC_REPO" --repository-version 2 >/dev/null
timed rs_backup restic backup -q --repo "$RESTIC_REPO" --compression auto "$SRC"
timed rs_restore restic restore -q --repo "$RESTIC_REPO" latest --target "$WORK/out-rs"
rm -rf "$WORK/out-rs"
OSD_RSS[restic]=$(osd_rss)

mb() { awk "BEGIN{printf \"%.0f\", $BYTES / 1048576 / $1}"; }
echo
echo "file: $((BYTES >> 20)) MiB; $(nproc) cores; radosgw on this machine; times from cold caches"
printf "%-36s %9s %9s %9s %9s %11s\n" step seconds MB/s requests "peak MiB" "server CPU s"
for step in fs_backup s3_backup rs_backup fs_restore s3_restore rs_restore s3_check; do
  case $step in
    fs_*) label="dagvault, filesystem" ;;
    s3_*) label="dagvault, S3" ;;
    rs_*) label="restic $(restic version | cut -d' ' -f2), S3" ;;
  esac
  printf "%-36s %9s %9s %9s %9s %11s\n" "${step#*_}: $label" "${T[$step]}" "$(mb "${T[$step]}")" \
    "$([ "${step%%_*}" = fs ] && echo - || echo "${Q[$step]}")" "$((${R[$step]} >> 10))" \
    "$([ "${step%%_*}" = fs ] && echo - || echo "${S[$step]}")"
done
echo "(server CPU: radosgw and its OSD, in RAM on this machine, during the step; a fresh"
echo " radosgw for each tool; the OSD's resident size after dagvault's steps ${OSD_RSS[dagvault]} MiB,"
echo " after restic's ${OSD_RSS[restic]} MiB)"
echo
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
echo "backup: dagvault S3 / filesystem speed:   $(ratio "${T[fs_backup]}" "${T[s3_backup]}") (target >= 0.7)"
echo "backup: restic S3 / dagvault S3 time:     $(ratio "${T[rs_backup]}" "${T[s3_backup]}") (target >= 2)"
echo "restore: dagvault S3 / filesystem speed:  $(ratio "${T[fs_restore]}" "${T[s3_restore]}") (target >= 0.7;" \
  "medians of $RUNS: filesystem ${RUN_TIMES[fs_restore]}s, S3 ${RUN_TIMES[s3_restore]}s)"
echo "restore: restic S3 / dagvault S3 time:    $(ratio "${T[rs_restore]}" "${T[s3_restore]}") (target >= 2)"
