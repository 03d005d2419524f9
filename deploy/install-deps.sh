#!/usr/bin/env bash
# Installs every Debian package dagvault needs to build, test and run.
# Idempotent: when everything is present it prints nothing and exits 0.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format git
  # libraries (DESIGN.md §9)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libssl-dev libzstd-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # HTTPS for /metrics (and the console): cpp-httplib over OpenSSL
  libcpp-httplib-dev
  # systemd readiness (Type=notify): sd_notify
  libsystemd-dev
  # test and lab tools: XFS images for reflink tests, namespaces, timing
  xfsprogs iproute2 util-linux procps python3
  # fuzzing (tests/fuzz/run.sh, ./tests/run.sh --long): clang and libFuzzer
  clang libclang-rt-14-dev
  # the fault matrix: a wall-clock step of one process (libfaketime)
  faketime
  # monitoring: the real Prometheus server and promtool, for the metrics and
  # alert-rule tests (docs/monitoring.md)
  prometheus
  # the web console's tests: headless Chromium (docs/console.md)
  chromium
  # command lines (DESIGN.md §10)
  libcli11-dev
  # Debian packages (CPack) and their checks (docs/packages.md)
  dpkg-dev fakeroot lintian
  # the S3 repository backend: HTTP over libcurl (docs/repository.md)
  libcurl4-openssl-dev
  # a real S3 server for the tests: a single-node Ceph with radosgw
  # (tests/s3/ceph-rgw.sh)
  ceph-mon ceph-osd radosgw ceph-common
  # the PostgreSQL catalog (issue 18): libpq, and the server the
  # tests start privately (tests/postgres/postgres.sh; the package's own
  # cluster is never used)
  libpq-dev postgresql-15
  # etcd (issue 18): the server and etcdctl the tests start privately
  # (tests/etcd/etcd.sh), and etcd's own .proto files with their imports,
  # from which the coordinator's etcd client is generated (proto/CMakeLists.txt)
  etcd-server etcd-client golang-etcd-server-dev golang-github-gogo-protobuf-dev
  golang-github-grpc-ecosystem-grpc-gateway-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them yourself) and retry" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
