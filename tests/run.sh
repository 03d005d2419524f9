#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test.
#
#   ./tests/run.sh            the default suite (about 9 minutes of tests on 2 cores,
#                             plus the build)
#   ./tests/run.sh --long     also the long campaigns (crash loops, every cell of the
#                             fault matrix, a minute of each fuzz target)
#   ./tests/run.sh -R regex   only the tests whose names match
#
# Environment: DAGVAULT_BUILD_DIR (default build), DAGVAULT_SANITIZE
# (e.g. address,undefined: builds in build-sanitize with sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."

long=0
ctest_args=()
while (($#)); do
  case "$1" in
    --long) long=1 ;;
    -R) ctest_args+=(-R "$2"); shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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

cd "$build_dir"
if ((long)); then
  ctest --output-on-failure "${ctest_args[@]}"
  # The fuzz targets, in their own clang build (build-fuzz/), a minute each.
  cd - >/dev/null
  ./tests/fuzz/run.sh "${DAGVAULT_FUZZ_SECONDS:-60}"
else
  ctest --output-on-failure -LE long "${ctest_args[@]}"
fi
