#!/bin/bash
# The repository benchmark (issues 4 and 21): a 4 GiB .edb-like file
# backed up, changed by 2% of pages uniformly and then in runs, restored
# and checked, by dagvault and by its peers restic (zstd auto) and
# borgbackup (lz4, its default) from Debian, with the plain copy rate (cp,
# then sync) and the disk's durable write rate (dd oflag=direct) as
# yardsticks. Also prints how much each first backup and restore grew the
# page cache, and zstd's levels on the file. Prints figures; never fails
# on speed. The restore and dd are run DAGVAULT_BENCH_RUNS (3) times,
# alternating, and compared by their medians.
#
#   tests/bench/repository_bench.sh [GIB]      (default 4; needs ~8×GIB free)
#
# Each timed step starts with cold caches when /proc/sys/vm/drop_caches is
# writable (root), so that no tool reads the file from memory another left.
set -euo pipefail
cd "$(dirname "$0")/../.."
GIB=${1:-4}
WORK=${DAGVAULT_BENCH_DIR:-/var/tmp/dagvault-bench}
BIN=build/bin
if ! command -v restic >/dev/null || ! command -v borg >/dev/null || [ ! -x /usr/bin/time ]; then
  apt-get update -qq && apt-get install -y -qq restic borgbackup time >/dev/null
fi
[ -x $BIN/dagvault ] && [ -x $BIN/repository_bench_data ] || {
  cmake -S . -B build -G Ninja >/dev/null && ninja -C build dagvault repository_bench_data; }
rm -rf "$WORK" && mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
export DAGVAULT_PASSPHRASE=bench-passphrase RESTIC_PASSWORD=bench-passphrase \
  BORG_PASSPHRASE=bench-passphrase BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
  BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
SRC=$WORK/src/priv1.edb
mkdir -p "$WORK/src"

cold() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches || true; }
# timed NAME CMD...: runs CMD from cold caches and records its seconds
# and its peak resident size (KiB, from GNU time).
declare -A T S R C
cached_kib() { awk '/^Cached:/{print $2}' /proc/meminfo; }
timed() {
  local name=$1; shift
  cold
  local s e c
  c=$(cached_kib)
  s=$(date +%s.%N)
  # Through bash, so that NAME may be one of the functions below.
  /usr/bin/time -o "$WORK/$name.rss" -f %M bash -c '"$@"' _ "$@" >"$WORK/$name.out" 2>&1 ||
    { echo "$name failed:"; cat "$WORK/$name.out"; exit 1; }
  e=$(date +%s.%N)
  # The page cache's growth over the step (MiB): files it read or wrote
  # and left cached, which push a mail server's own pages out.
  C[$name]=$(( ($(cached_kib) - c) >> 10 ))
  T[$name]=$(awk "BEGIN{printf \"%.2f\", $e - $s}")
  R[$name]=$(tail -1 "$WORK/$name.rss")
}
size_of() { du -sb "$1" | cut -f1; }

echo "making a ${GIB} GiB .edb-like file (8 KiB pages, half text, half random)..."
$BIN/repository_bench_data make "$SRC" "$GIB" 1
BYTES=$(stat -c %s "$SRC")

timed copy sh -c "cp '$SRC' '$WORK/copy.edb' && sync"
rm -f "$WORK/copy.edb"

$BIN/dagvault repo init --repo "$WORK/dv" >/dev/null
restic init -q --repo "$WORK/restic" --repository-version 2 >/dev/null
borg init -e repokey "$WORK/borg" >/dev/null 2>&1

dv_backup() { $BIN/dagvault repo backup --repo "$WORK/dv" --unit DB01 --file "database:$SRC" --workers 2; }
rs_backup() { restic backup -q --repo "$WORK/restic" --compression auto "$SRC"; }
bg_backup() { borg create --compression lz4 "$WORK/borg::$1" "$SRC"; }
export -f dv_backup rs_backup bg_backup
export BIN WORK SRC

for round in 1 2 3; do
  case $round in
    2) $BIN/repository_bench_data change "$SRC" 0.02 uniform 2 ;;
    3) $BIN/repository_bench_data change "$SRC" 0.02 runs 3 ;;
  esac
  for tool in dv rs bg; do
    before=$(size_of "$WORK/$( [ $tool = dv ] && echo dv || ([ $tool = rs ] && echo restic || echo borg))")
    case $tool in
      dv) timed dv$round dv_backup ;;
      rs) timed rs$round rs_backup ;;
      bg) timed bg$round bg_backup b$round ;;
    esac
    after=$(size_of "$WORK/$( [ $tool = dv ] && echo dv || ([ $tool = rs ] && echo restic || echo borg))")
    S[$tool$round]=$((after - before))
  done
done

# The restore against the disk's durable write rate (direct writes, then
# the fsync that makes them durable; a restore ends with one too). Both
# move by ±25% from one run to the next on a shared machine, so RUNS
# alternating runs of each, compared by their medians.
#
# A restore does more than dd on its disk. It reads the file back by
# direct I/O to prove it (repository-format.md, "Restoring"): `wr` is dd
# then that read-back. And it reads the repository: with both on this
# machine's one disk it cannot be faster than the disk reading the packs
# and writing the file at once (`rw`: dd and cat side by side). In a
# deployment the repository is on another machine (a backup server, a
# NAS, S3), so the restore is also timed from a copy of the repository on
# another device: a tmpfs, when this runs as root and may mount one. That
# one is held to the target, 0.8 of dd; the same-disk one is shown
# against `rw`.
RUNS=${DAGVAULT_BENCH_RUNS:-3}
median() { sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
dd_write() {
  dd if=/dev/zero of="$WORK/dd.img" bs=8M count=$((BYTES >> 23)) oflag=direct conv=fsync \
    2>/dev/null
}
disk_wr() {
  dd_write && dd if="$WORK/dd.img" of=/dev/null bs=8M iflag=direct 2>/dev/null
}
disk_rw() {
  dd_write &
  local writer=$!
  find "$WORK/dv/packs" -type f -exec cat {} + >/dev/null
  wait $writer
}
dv_restore() {
  $BIN/dagvault repo restore "$(ls "$1/manifests" | tail -1 | sed 's/\.mf$//')" --repo "$1" \
    --to "$WORK/out-dv"
}
export -f dd_write disk_wr disk_rw dv_restore
export BYTES
MEM=$WORK/mem
if [ "$(id -u)" = 0 ] && mkdir -p "$MEM" &&
  mount -t tmpfs -o size=$(($(size_of "$WORK/dv") + (1 << 30))) dagvault-bench "$MEM" 2>/dev/null; then
  trap 'umount "$MEM" 2>/dev/null; rm -rf "$WORK"' EXIT
  cp -a "$WORK/dv" "$MEM/dv"
else
  MEM=
fi
dd_runs=() wr_runs=() rw_runs=() restore_runs=() other_runs=()
for ((run = 1; run <= RUNS; run++)); do
  timed dd dd_write
  rm -f "$WORK/dd.img"
  dd_runs+=("${T[dd]}")
  timed wr disk_wr
  rm -f "$WORK/dd.img"
  wr_runs+=("${T[wr]}")
  timed rw disk_rw
  rm -f "$WORK/dd.img"
  rw_runs+=("${T[rw]}")
  rm -rf "$WORK/out-dv"
  timed dvrestore dv_restore "$WORK/dv"
  restore_runs+=("${T[dvrestore]}")
  if [ -n "$MEM" ]; then
    rm -rf "$WORK/out-dv"
    timed dvrestoremem dv_restore "$MEM/dv"
    other_runs+=("${T[dvrestoremem]}")
  fi
done
T[dd]=$(printf '%s\n' "${dd_runs[@]}" | median)
T[wr]=$(printf '%s\n' "${wr_runs[@]}" | median)
T[rw]=$(printf '%s\n' "${rw_runs[@]}" | median)
T[dvrestore]=$(printf '%s\n' "${restore_runs[@]}" | median)
[ -n "$MEM" ] && T[dvrestoremem]=$(printf '%s\n' "${other_runs[@]}" | median)
cmp "$SRC" "$WORK/out-dv/priv1.edb" && rm -rf "$WORK/out-dv"
timed rsrestore restic restore -q --repo "$WORK/restic" latest --target "$WORK/out-rs"
rm -rf "$WORK/out-rs"
timed bgrestore sh -c "mkdir -p '$WORK/out-bg' && cd '$WORK/out-bg' && borg extract '$WORK/borg::b3'"
rm -rf "$WORK/out-bg"
timed dvcheck $BIN/dagvault repo check --repo "$WORK/dv" --read-data

mb() { awk "BEGIN{printf \"%.0f\", $BYTES / 1048576 / $1}"; }
pct() { awk "BEGIN{printf \"%.1f%%\", 100 * $1 / $BYTES}"; }
row() { printf "%-34s %9s %9s %14s %9s %9s\n" "$@"; }
echo
echo "file: $((BYTES >> 20)) MiB; $(nproc) cores; times from cold caches"
row step seconds MB/s stored "peak MiB" "cache MiB"
row "cp + sync" "${T[copy]}" "$(mb ${T[copy]})" - - "${C[copy]}"
row "dd oflag=direct conv=fsync" "${T[dd]}" "$(mb ${T[dd]})" - - "${C[dd]}"
row "dd write, then direct read-back" "${T[wr]}" "$(mb ${T[wr]})" - - "${C[wr]}"
row "dd write + cat of the packs" "${T[rw]}" "$(mb ${T[rw]})" - - "${C[rw]}"
for r in 1 2 3; do
  label=$([ $r = 1 ] && echo "first backup" || ([ $r = 2 ] && echo "2% uniform" || echo "2% in runs"))
  for tool in dv rs bg; do
    name=$([ $tool = dv ] && echo "dagvault (2 workers)" || ([ $tool = rs ] && echo "restic $(restic version | cut -d' ' -f2)" || echo "borg $(borg --version | cut -d' ' -f2) lz4"))
    row "$label: $name" "${T[$tool$r]}" "$(mb ${T[$tool$r]})" \
      "${S[$tool$r]} ($(pct ${S[$tool$r]}))" "$((${R[$tool$r]} >> 10))" "${C[$tool$r]}"
  done
done
for tool in dv rs bg; do
  row "restore: $tool" "${T[${tool}restore]}" "$(mb ${T[${tool}restore]})" - \
    "$((${R[${tool}restore]} >> 10))" "${C[${tool}restore]}"
done
[ -n "$MEM" ] && row "restore: dv, repository on tmpfs" "${T[dvrestoremem]}" \
  "$(mb ${T[dvrestoremem]})" - "$((${R[dvrestoremem]} >> 10))" "${C[dvrestoremem]}"
row "check --read-data: dagvault" "${T[dvcheck]}" "$(mb ${T[dvcheck]})" - "$((${R[dvcheck]} >> 10))" \
  "${C[dvcheck]}"
echo
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
echo "first backup: dagvault rate / copy rate:  $(ratio ${T[copy]} ${T[dv1]}) (target >= 0.6)"
echo "first backup: restic / dagvault time:     $(ratio ${T[rs1]} ${T[dv1]}) (target >= 4)"
echo "first backup: borg lz4 / dagvault time:   $(ratio ${T[bg1]} ${T[dv1]}) (target >= 2.5)"
echo "first backup: stored, dagvault / restic:  $(ratio ${S[dv1]} ${S[rs1]}) (target <= 1.1)"
echo "first backup: dagvault page cache growth: ${C[dv1]} MiB (target <= 64)"
echo "first backup: dagvault peak RSS:          $((${R[dv1]} >> 10)) MiB (target <= 218)"
echo "dagvault second backups / first (time):   $(ratio ${T[dv2]} ${T[dv1]}), $(ratio ${T[dv3]} ${T[dv1]}) (target <= 0.5)"
echo "dagvault new data, 2% uniform / in runs:  $(pct ${S[dv2]}), $(pct ${S[dv3]}) (target <= 4%)"
if [ -n "$MEM" ]; then
  echo "dagvault restore rate / durable dd rate:  $(ratio ${T[dd]} ${T[dvrestoremem]}) (target >= 0.8;" \
    "repository on tmpfs; medians of $RUNS: dd ${dd_runs[*]} s, restore ${other_runs[*]} s)"
  echo "  the same / dd write, then read-back:    $(ratio ${T[wr]} ${T[dvrestoremem]})" \
    "(medians of $RUNS: ${wr_runs[*]} s; a restore reads its file back to prove it)"
else
  echo "dagvault restore rate / durable dd rate:  not measured (mounting a tmpfs needs root)"
fi
echo "same disk: restore / dd write + pack read: $(ratio ${T[rw]} ${T[dvrestore]}) (medians of $RUNS:" \
  "dd + cat ${rw_runs[*]} s, restore ${restore_runs[*]} s; against dd alone" \
  "$(ratio ${T[dd]} ${T[dvrestore]}))"
echo "dagvault restore: page cache growth:      ${C[dvrestore]} MiB"
echo
$BIN/repository_bench_data zstd-table "the bench's .edb-like file" "$SRC"
