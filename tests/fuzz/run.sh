#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan, UBSan) and runs
# each for SECONDS_PER_TARGET (default 60), one after the other, on its
# seeds and on what earlier runs found. Prints per target the runs
# executed, the CPU seconds and the crashes found; exits 1 if any target
# crashed (the input is under build-fuzz/artifacts/<target>/).
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Environment: DAGVAULT_FUZZ_BUILD_DIR (default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(log_format edb_page checkpoint repo_plaintext sealed_blob text_config cron restore_names)
fi
build=${DAGVAULT_FUZZ_BUILD_DIR:-build-fuzz}
lock=/tmp/dagvault-build.lock

CC=clang CXX=clang++ flock "$lock" cmake -S . -B "$build" -G Ninja -DDAGVAULT_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
build_targets=(fuzz_seed_generator)
for t in "${targets[@]}"; do build_targets+=("${t}_fuzz"); done
flock "$lock" cmake --build "$build" --target "${build_targets[@]}"

# Fresh seeds from today's encoders, beside the committed ones.
"$build/bin/fuzz_seed_generator" "$build/fuzz-corpus"

printf '\n%-16s %12s %10s %8s\n' target runs cpu_s crashes
total_cpu=0
failed=0
for t in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus" "tests/fuzz/corpus/$t")
  [[ -d "tests/fuzz/regressions/$t" ]] && dirs+=("tests/fuzz/regressions/$t")
  log="$build/fuzz-$t.log"
  before=$(find "$artifacts" -type f | wc -l)
  start=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
  rc=0
  "$build/bin/${t}_fuzz" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  end=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
  cpu=$(((end - start) / $(getconf CLK_TCK)))
  total_cpu=$((total_cpu + cpu))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(($(find "$artifacts" -type f | wc -l) - before))
  if ((rc != 0 && crashes == 0)); then crashes="?(rc $rc)"; fi
  printf '%-16s %12s %10s %8s\n' "$t" "${runs:-?}" "$cpu" "$crashes"
  if [[ "$crashes" != 0 ]]; then
    failed=1
    grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /'
  fi
done
printf '%-16s %12s %10s\n' total "" "$total_cpu"
exit "$failed"
