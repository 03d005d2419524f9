#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
#
#   ./tests/run.sh            the default suite (about 10 minutes of tests on 2 cores,
#                             two test binaries at a time, plus the build)
#   ./tests/run.sh --long     also the long campaigns (crash loops, every cell of the
#                             fault matrix, a minute of each fuzz target)
#   ./tests/run.sh -R regex   only the tests whose names match
#
# Environment: DAGVAULT_TEST_JOBS (test binaries run at once, default 2: the
# multi-process tests mostly wait on their daemons, and two at a time
# halve the run on 2 cores), DAGVAULT_BUILD_DIR (default build), DAGVAULT_SANITIZE
# (e.g. address,undefined: builds in build-sanitize with sanitizers),
# DAGVAULT_TEST_S3 (an s3:// URL of a bucket to test against instead of the
# radosgw this script starts; tests/s3/README.md), DAGVAULT_TEST_POSTGRES (a
# libpq connection string of a database to test against instead of the
# PostgreSQL this script starts with tests/postgres/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

long=0
ctest_args=()
while (($#)); do
  case "$1" in
    --long) long=1 ;;
    -R) ctest_args+=(-R "$2"); shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

./deploy/install-deps.sh

build_dir=${DAGVAULT_BUILD_DIR:-build}
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DDAGVAULT_WERROR=ON)
if [[ -n "${DAGVAULT_SANITIZE:-}" ]]; then
  build_dir=${DAGVAULT_BUILD_DIR:-build-sanitize}
  cmake_args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DDAGVAULT_SANITIZE=${DAGVAULT_SANITIZE}")
fi

cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

# The engines the tests share, started once for the whole run and stopped
# by pid at its end.
cleanups=()
cleanup() {
  local c
  for c in "${cleanups[@]}"; do eval "$c" || true; done
}
trap cleanup EXIT

# PostgreSQL (about 1 s to start): the PostgreSQL catalog's tests use it.
if [[ -z "${DAGVAULT_TEST_POSTGRES:-}" ]]; then
  pg_dir=$(mktemp -d /tmp/dagvault-pg.XXXXXX)
  pg_script="$PWD/tests/postgres/postgres.sh"
  cleanups+=("\"$pg_script\" stop \"$pg_dir\" >/dev/null 2>&1; rm -rf \"$pg_dir\"")
  "$pg_script" start "$pg_dir" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . "$pg_dir/env"
  set +a
fi

# One S3 server for the whole run (Ceph's radosgw, about 20 s to start):
# the repository suites and the S3 deployment tests use it.
if [[ -z "${DAGVAULT_TEST_S3:-}" ]]; then
  rgw_dir=$(mktemp -d /tmp/dagvault-rgw.XXXXXX)
  rgw_script="$PWD/tests/s3/ceph-rgw.sh"
  cleanups+=("\"$rgw_script\" stop \"$rgw_dir\" >/dev/null 2>&1; rm -rf \"$rgw_dir\"")
  "$rgw_script" start "$rgw_dir" >"$rgw_dir/started.env"
  set -a
  # shellcheck disable=SC1091
  . "$rgw_dir/started.env"
  set +a
  export DAGVAULT_TEST_S3="s3://${DAGVAULT_S3_BUCKET}?endpoint=${DAGVAULT_S3_ENDPOINT}&region=${DAGVAULT_S3_REGION}"
  export DAGVAULT_TEST_S3_LOCKED="s3://${DAGVAULT_S3_LOCKED_BUCKET}?endpoint=${DAGVAULT_S3_ENDPOINT}&region=${DAGVAULT_S3_REGION}"
fi

cd "$build_dir"
ctest_args+=(-j "${DAGVAULT_TEST_JOBS:-2}")
if ((long)); then
  ctest --output-on-failure "${ctest_args[@]}"
  # The fuzz targets, in their own clang build (build-fuzz/), a minute each.
  cd - >/dev/null
  ./tests/fuzz/run.sh "${DAGVAULT_FUZZ_SECONDS:-60}"
else
  ctest --output-on-failure -LE long "${ctest_args[@]}"
fi
