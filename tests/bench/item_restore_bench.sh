#!/bin/bash
# The item-level restore and restore verification benchmark (issue 20): a 3-node lab deployment
# (lab.sh --dagvault) whose unit DB02 is loaded with mail-like items (75 KiB
# to 1 MiB) in MAILBOXES mailboxes for SECONDS, backed up (a Full), then one
# mailbox restored with `dagvault restore items`:
#
#   - into production, into an empty mailbox (--target-mailbox), so every
#     item is copied: the time of each step (from the job's plan) and the
#     items and bytes copied;
#   - exported to files: the same figures, and every file's bytes checked
#     against the index's SHA-256;
#
# then the restore point verified (`dagvault restore verify`): the restore
# and check times, pages, items and bytes.
#
# Prints figures; never fails on speed.
#
#   tests/bench/item_restore_bench.sh [SECONDS] [MAILBOXES]   (default 20 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_LOAD=${1:-20}
MAILBOXES=${2:-20}
WORK=${DAGVAULT_BENCH_DIR:-/var/tmp/dagvault-item-restore-bench}
BIN=$PWD/build/bin
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
ninja -C build dagvault dagvault-agent dagvault-coordinator mailstored mailstore-util >/dev/null

LAB=$WORK/lab
cleanup() {
  deploy/lab/lab.sh stop --dir "$LAB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
cleanup
trap cleanup EXIT
mkdir -p "$WORK"
deploy/lab/lab.sh start --fresh --dir "$LAB" --nodes 3 --lag-seconds 0 --log-size 1048576 \
  --dagvault >/dev/null
read -r _ STORE1 _ _ < <(sed -n 1p "$LAB/nodes.txt")
export DAGVAULT_COORDINATOR=127.0.0.1:7180 DAGVAULT_CERTS=$LAB/certs
dv() { "$BIN/dagvault" "$@"; }
util() { "$BIN/mailstore-util" "$@"; }

util load --server "$STORE1" --unit DB02 --duration "$SECONDS_LOAD" --threads 4 \
  --mailboxes "$MAILBOXES" --size-mix 75k:50,1m:50 >/dev/null
util roll --server "$STORE1" --unit DB02 >/dev/null
sleep 2
full=$(dv backup start --unit DB02 --type full --wait --json 2>/dev/null)
[[ $(jq -r .state <<<"$full") == JOB_SUCCEEDED ]] || { jq . <<<"$full" >&2; exit 1; }
printf 'DB02: %s MiB backed up (%s mailboxes)\n' $(( $(jq -r .bytes_total <<<"$full") >> 20 )) \
  "$MAILBOXES"

steps() {
  jq -r '.plan.steps[] | "  \(.number). \(.name): \(((.ended_us | tonumber) - (.started_us | tonumber)) / 1e6 | . * 100 | round / 100) s"' <<<"$1"
}
counts() {
  jq -r '.plan.item_result.counts | "  \(.found // 0) items found, \(.copied // 0) copied, \(.exported // 0) exported, \((.bytes // 0 | tonumber) / 1048576 | . * 10 | round / 10) MiB"' <<<"$1"
}
rate() {  # job → MiB/s of step 2
  jq -r '(.plan.item_result.counts.bytes // 0 | tonumber) / 1048576 / (((.plan.steps[1].ended_us | tonumber) - (.plan.steps[1].started_us | tonumber)) / 1e6) | . * 10 | round / 10' <<<"$1"
}

t0=$(date +%s%6N)
job=$(dv restore items --unit DB02 --mailbox 3 --into-production --target-mailbox 1000000 \
  --wait --json 2>/dev/null)
t1=$(date +%s%6N)
[[ $(jq -r .state <<<"$job") == JOB_SUCCEEDED ]] || { jq . <<<"$job" >&2; exit 1; }
printf '\nmailbox 3 into production (an empty mailbox): %.1f s in all\n' \
  "$(awk "BEGIN{print ($t1 - $t0) / 1e6}")"
steps "$job"
counts "$job"
echo "  copy rate (step 2): $(rate "$job") MiB/s"

EXPORT=$WORK/export
t0=$(date +%s%6N)
job=$(dv restore items --unit DB02 --mailbox 3 --export "$EXPORT" --wait --json 2>/dev/null)
t1=$(date +%s%6N)
[[ $(jq -r .state <<<"$job") == JOB_SUCCEEDED ]] || { jq . <<<"$job" >&2; exit 1; }
printf '\nmailbox 3 exported: %.1f s in all\n' "$(awk "BEGIN{print ($t1 - $t0) / 1e6}")"
steps "$job"
counts "$job"
echo "  export rate (step 2): $(rate "$job") MiB/s"
bad=0
while read -r file sha; do
  [[ $(sha256sum "$EXPORT/$file" | cut -d' ' -f1) == "$sha" ]] || { echo "  $file differs" >&2; bad=1; }
done < <(jq -r '.items[] | "\(.file) \(.sha256)"' "$EXPORT/index.json")
(( bad == 0 )) && echo "  every exported file's SHA-256 equals the index's"

# A restore verification of the same restore point (issue 20 §2): the
# whole unit restored as a Recovery Database, checked, mounted, read whole
# and in sample, removed.
t0=$(date +%s%6N)
job=$(dv restore verify --unit DB02 --wait --json 2>/dev/null)
t1=$(date +%s%6N)
[[ $(jq -r .state <<<"$job") == JOB_SUCCEEDED ]] || { jq . <<<"$job" >&2; exit 1; }
printf '\nrestore verification of DB02: %.1f s in all\n' "$(awk "BEGIN{print ($t1 - $t0) / 1e6}")"
jq -r '.plan.verification | "  \(.files) files, \((.bytes | tonumber) / 1048576 | . * 10 | round / 10) MiB restored and replayed in \((.restore_us | tonumber) / 1e6 | . * 100 | round / 100) s (\((.bytes | tonumber) / 1048576 / ((.restore_us | tonumber) / 1e6) | . * 10 | round / 10) MiB/s)",
  "  checks \((.check_us | tonumber) / 1e6 | . * 100 | round / 100) s: " + ([.databases[] | "\(.database) \(.pages) pages, \(.items) items (\((.value_bytes | tonumber) / 1048576 | . * 10 | round / 10) MiB) digested, \(.sampled_items) read by key"] | join("; ")),
  "  passed: \(.passed // false), on \(.node)"' <<<"$job"
