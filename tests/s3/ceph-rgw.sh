#!/usr/bin/env bash
# Starts and stops a throw-away single-node Ceph cluster (one monitor, one
# memstore OSD, one radosgw) on 127.0.0.1, for the S3 tests. Uses Debian 12's
# packages (ceph-mon, ceph-osd, radosgw, ceph-common: Ceph 16.2 Pacific).
#
#   tests/s3/ceph-rgw.sh start DIR   everything lives under DIR (created; a
#                                    stopped cluster left there is wiped first).
#                                    Progress goes to stderr; stdout gets only
#                                    KEY=VALUE lines, also written to DIR/env:
#                                      eval "$(tests/s3/ceph-rgw.sh start DIR)"
#   tests/s3/ceph-rgw.sh stop DIR    stops the daemons by the pids recorded in
#                                    DIR/pids, checks no process is left, then
#                                    removes the cluster data (mon, osd, run) and
#                                    keeps DIR/log, DIR/ceph.conf, DIR/env and
#                                    DIR/verify.log. KEEP_DATA=1 keeps it all.
#
# Environment: CEPH_RGW_TIMEOUT (seconds to wait for each daemon, default 180),
# CEPH_RGW_SKIP_VERIFY=1 (skip the S3 self-test at the end of start),
# CEPH_RGW_MEMSTORE_BYTES (OSD capacity, default 3 GiB, in RAM as it fills),
# CEPH_RGW_KEEP_ON_FAILURE=1 (leave the daemons running when start fails).
#
# Inside the cluster there is no authentication (auth ... required = none);
# radosgw still checks SigV4 signatures with the user's keys below.
set -euo pipefail

usage() { sed -n '2,20p' "$0" >&2; exit 2; }
(($# == 2)) || usage
cmd=$1
[[ $cmd == start || $cmd == stop ]] || usage
if [[ $cmd == stop && ! -d $2 ]]; then
  echo "[ceph-rgw] $2 does not exist; nothing to stop" >&2
  exit 0
fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd)

CONF=$DIR/ceph.conf
export CEPH_CONF=$CONF
TIMEOUT=${CEPH_RGW_TIMEOUT:-180}
MEMSTORE_BYTES=${CEPH_RGW_MEMSTORE_BYTES:-3221225472}

ACCESS_KEY=DAGVAULTTESTACCESSKY
SECRET_KEY=dagvault-test-secret-key-0123456789abcdef
USER_ID=dagvault-test
BUCKET=dagvault-test
LOCKED_BUCKET=dagvault-locked
# The object-lock probes run in a bucket of their own, so that the two buckets
# handed to the tests start out empty (a COMPLIANCE version cannot be removed).
PROBE_BUCKET=ceph-rgw-selftest-locked

log() { printf '[ceph-rgw %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 15 "$@"; }

# True if pid is alive and has our conf file as one of its arguments (guards
# against a recycled pid, and against ever touching another cluster).
ours() {
  local pid=$1 arg
  local -a argv=()
  [[ -r /proc/$pid/cmdline ]] || return 1
  mapfile -d '' -t argv <"/proc/$pid/cmdline" 2>/dev/null || return 1
  for arg in "${argv[@]}"; do [[ $arg == "$CONF" ]] && return 0; done
  return 1
}

# ---------------------------------------------------------------- stop ----

any_alive() {
  local pid
  for pid in "$@"; do ours "$pid" && return 0; done
  return 1
}

stop_daemons() {
  local name pidfile pid t
  local -a pids=()
  for name in rgw osd mon; do  # reverse start order
    pidfile=$DIR/pids/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    if ours "$pid"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      # Let it go before the next one, so the OSD can still tell the monitor.
      for ((t = 0; t < 50; t++)); do ours "$pid" || break; sleep 0.2; done
    fi
  done
  ((${#pids[@]})) || return 0
  for ((t = 0; t < 100; t++)); do any_alive "${pids[@]}" || break; sleep 0.2; done
  for pid in "${pids[@]}"; do
    if ours "$pid"; then
      log "pid $pid is still running 20 s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for ((t = 0; t < 50; t++)); do any_alive "${pids[@]}" || break; sleep 0.2; done
}

# Every process still running with our conf file as an argument (daemons, a
# stuck ceph or radosgw-admin). Only reported, never killed by pattern.
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if ours "$p"; then
      printf '  pid %s: %s\n' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"
    fi
  done
}

cmd_stop() {
  local t0=$EPOCHREALTIME left
  stop_daemons
  left=$(leftovers)
  if [[ -n $left ]]; then
    log "ERROR: processes still running with $CONF:"
    printf '%s\n' "$left" >&2
    exit 1
  fi
  rm -f "$DIR"/pids/*.pid
  log "stopped in $(elapsed "$t0") s; no process left running with $CONF"
  if [[ ${KEEP_DATA:-0} == 1 ]]; then
    log "kept everything under $DIR"
  else
    rm -rf "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/rgw" "$DIR/crash" "$DIR/tmp" \
      "$DIR/monmap" "$DIR/keyring" "$DIR/pids"
    log "removed the cluster data; kept $DIR/{log,ceph.conf,env,verify.log}"
  fi
}

# --------------------------------------------------------------- start ----

elapsed() {  # seconds since $1 (an $EPOCHREALTIME), to a tenth
  local now=${EPOCHREALTIME//[!0-9]/} then=${1//[!0-9]/}
  local d=$(((10#$now - 10#$then) / 100000))
  printf '%d.%d' $((d / 10)) $((d % 10))
}

free_ports() {  # N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

tail_logs() {
  local f
  for f in "$DIR"/log/*; do
    [[ -s $f ]] || continue
    echo "----- last lines of $f" >&2
    tail -n 20 "$f" >&2
  done
}

# Runs a daemon in the foreground of its own session; records its pid.
spawn() {
  local name=$1
  shift
  setsid "$@" -f </dev/null >>"$DIR/log/$name.stdout" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
  log "started $name (pid $!): $*"
}

wait_for() {  # wait_for WHAT COMMAND...: polls COMMAND until it succeeds
  local what=$1 t0=$SECONDS name
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 > TIMEOUT)); then
      log "ERROR: timed out after ${TIMEOUT} s waiting for $what"
      tail_logs
      return 1
    fi
    for name in mon osd rgw; do
      if [[ -f $DIR/pids/$name.pid ]] && ! ours "$(<"$DIR/pids/$name.pid")"; then
        log "ERROR: $name exited while waiting for $what"
        tail_logs
        return 1
      fi
    done
    sleep 0.5
  done
}

on_start_failure() {
  trap - EXIT
  if [[ ${CEPH_RGW_KEEP_ON_FAILURE:-0} == 1 ]]; then
    log "start failed; daemons left running (CEPH_RGW_KEEP_ON_FAILURE=1)"
  else
    log "start failed; stopping what was started (logs kept in $DIR/log)"
    stop_daemons || true
  fi
  exit 1
}

write_conf() {
  local fsid=$1 mon_port=$2 rgw_port=$3
  cat >"$CONF" <<EOF
# Written by tests/s3/ceph-rgw.sh: a throw-away test cluster sharing nothing
# with a system-wide Ceph (no /etc/ceph, /var/lib/ceph, /var/run/ceph, /var/log/ceph).
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# Without cephx there is no session key, so no "secure" connection mode; radosgw
# and radosgw-admin default to ms_mon_client_mode = secure and would hunt for a
# monitor forever ("get_initial_auth_request returned -13").
ms mon client mode = crc
auth allow insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
# One OSD: every pool has a single replica and few placement groups. Pools
# are created with these defaults, so no "osd pool set size 1" is needed.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# There is no ceph-mgr (nothing here needs one); without this the health
# turns to HEALTH_WARN "no active mgr" two minutes after mkfs.
mon mgr mkfs grace = 31536000
# How full the host's disk is, is not this cluster's business.
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $DIR/mon/\$id
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log

[osd]
osd data = $DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
log file = $DIR/log/\$name.log

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $DIR/rgw
rgw thread pool size = 32
log file = $DIR/log/\$name.log
EOF
}

rgw_up() { curl -sf -o /dev/null --max-time 5 "$ENDPOINT/"; }
osd_up() { ceph_cli osd dump 2>/dev/null | grep -q '^osd\.0 up  *in '; }
mon_up() { timeout 10 ceph -c "$CONF" --connect-timeout 5 mon stat; }

# ------------------------------------------------------------- S3 probe ----

# s3 METHOD PATH [--body FILE] [curl args...]: one SigV4-signed request; sets
# S3_STATUS, leaves the response in $DIR/tmp/{headers,body}. radosgw insists
# on x-amz-content-sha256 (without it: SignatureDoesNotMatch), and curl 7.88
# does not sort query parameters, so PATH must list them in sorted order,
# each with "=" (?versioning=, not ?versioning).
s3() {
  local method=$1 path=$2 hash=UNSIGNED-PAYLOAD
  local -a extra=()
  shift 2
  if [[ ${1:-} == --body ]]; then
    hash=$(openssl dgst -sha256 -r "$2" | cut -d' ' -f1)
    extra=(--data-binary "@$2" -H 'Content-Type: application/octet-stream')
    shift 2
  fi
  S3_STATUS=$(curl -sS --max-time 30 -D "$DIR/tmp/headers" -o "$DIR/tmp/body" -w '%{http_code}' \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" -X "$method" \
    -H "x-amz-content-sha256: $hash" "${extra[@]}" "$@" "$ENDPOINT$path") || S3_STATUS=000
}
header() { { grep -i "^$1:" "$DIR/tmp/headers" || true; } | tail -n 1 | cut -d' ' -f2- | tr -d '\r'; }
xml_values() { { grep -o "<$1>[^<]*" "$DIR/tmp/body" || true; } | cut -d'>' -f2; }
error_code() { xml_values Code | head -n 1; }
finding() { log "finding: $*"; echo "$*" >>"$DIR/verify.log"; }
expect() {  # expect STATUS WHAT
  [[ $S3_STATUS == "$1" ]] && return 0
  log "ERROR: $2: expected HTTP $1, got $S3_STATUS"
  cat "$DIR/tmp/body" >&2 2>/dev/null || true
  echo >&2
  return 1
}

pick_region() {
  local api_name r
  api_name=$(timeout 60 radosgw-admin -c "$CONF" zonegroup get 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["api_name"])')
  local -a works=()
  for r in "$api_name" us-east-1 no-such-region; do
    REGION=$r
    s3 GET /
    [[ $S3_STATUS == 200 ]] && works+=("$r")
  done
  finding "zonegroup api_name: $api_name; SigV4 region strings accepted: ${works[*]:-none}"
  ((${#works[@]})) || die "radosgw accepts none of the region strings"
  REGION=${works[0]}
}

create_buckets() {
  s3 PUT "/$BUCKET"
  expect 200 "create bucket $BUCKET"
  s3 PUT "/$LOCKED_BUCKET" -H 'x-amz-bucket-object-lock-enabled: true'
  expect 200 "create bucket $LOCKED_BUCKET with object lock"
  s3 GET "/$LOCKED_BUCKET?object-lock="
  expect 200 "get object lock configuration of $LOCKED_BUCKET"
  grep -q '<ObjectLockEnabled>Enabled<' "$DIR/tmp/body" ||
    die "$LOCKED_BUCKET has no object lock: $(cat "$DIR/tmp/body")"
  s3 GET "/$LOCKED_BUCKET?versioning="
  finding "$LOCKED_BUCKET: object lock Enabled, versioning $(xml_values Status)"
  log "buckets $BUCKET and $LOCKED_BUCKET (object lock) created"
}

verify() {
  local t dir=$DIR/tmp key version body=$DIR/tmp/payload
  echo "self-test payload $RANDOM" >"$body"

  # Round trip through each bucket; leaves both empty (no versions either).
  for b in "$BUCKET" "$LOCKED_BUCKET"; do
    s3 PUT "/$b/ceph-rgw-selftest/roundtrip" --body "$body"
    expect 200 "PUT into $b"
    version=$(header x-amz-version-id)
    s3 GET "/$b/ceph-rgw-selftest/roundtrip"
    expect 200 "GET from $b"
    cmp -s "$body" "$dir/body" || die "GET from $b returned other bytes"
    if [[ -n $version ]]; then
      s3 DELETE "/$b/ceph-rgw-selftest/roundtrip?versionId=$version"
    else
      s3 DELETE "/$b/ceph-rgw-selftest/roundtrip"
    fi
    expect 204 "DELETE from $b"
  done
  finding "PUT, GET and DELETE work in $BUCKET and $LOCKED_BUCKET"

  # Conditional create.
  s3 PUT "/$BUCKET/ceph-rgw-selftest/once" --body "$body" -H 'If-None-Match: *'
  expect 200 "first PUT with If-None-Match: *"
  s3 PUT "/$BUCKET/ceph-rgw-selftest/once" --body "$body" -H 'If-None-Match: *'
  if [[ $S3_STATUS == 412 ]]; then
    finding "If-None-Match: * on PUT is honoured: second PUT of the key -> 412 $(error_code)"
  else
    finding "If-None-Match: * on PUT is IGNORED: second PUT of the key -> $S3_STATUS"
  fi
  s3 DELETE "/$BUCKET/ceph-rgw-selftest/once"

  # ListObjectsV2, 5 keys, 2 a page.
  for key in 1 2 3 4 5; do
    s3 PUT "/$BUCKET/ceph-rgw-selftest/list/$key" --body "$body"
    expect 200 "PUT list/$key"
  done
  local token="" q pages=0
  local -a keys=()
  while :; do
    q="list-type=2&max-keys=2&prefix=ceph-rgw-selftest%2Flist%2F"
    [[ -n $token ]] && q="continuation-token=$(python3 -c \
      'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$token")&$q"
    s3 GET "/$BUCKET?$q"
    expect 200 "ListObjectsV2 page $((pages + 1))"
    pages=$((pages + 1))
    mapfile -t -O "${#keys[@]}" keys < <(xml_values Key)
    grep -q '<IsTruncated>true<' "$dir/body" || break
    token=$(xml_values NextContinuationToken)
    [[ -n $token && $pages -lt 10 ]] || die "ListObjectsV2: truncated page without a usable NextContinuationToken"
  done
  [[ ${#keys[@]} == 5 && $pages == 3 ]] ||
    die "ListObjectsV2 paging: got ${#keys[@]} keys in $pages pages: ${keys[*]}"
  finding "ListObjectsV2 max-keys=2 over 5 keys: 3 pages, continuation-token works (token is the last key, e.g. '$token')"
  for key in 1 2 3 4 5; do s3 DELETE "/$BUCKET/ceph-rgw-selftest/list/$key"; done

  # Object lock, in a locked bucket of its own.
  s3 PUT "/$PROBE_BUCKET" -H 'x-amz-bucket-object-lock-enabled: true'
  expect 200 "create bucket $PROBE_BUCKET"
  local until md5
  until=$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)
  md5=$(openssl dgst -md5 -binary "$body" | base64)
  s3 PUT "/$PROBE_BUCKET/locked" --body "$body" -H "Content-MD5: $md5" \
    -H 'x-amz-object-lock-mode: COMPLIANCE' -H "x-amz-object-lock-retain-until-date: $until"
  expect 200 "PUT with COMPLIANCE retention"
  version=$(header x-amz-version-id)
  [[ -n $version ]] || die "PUT into the locked bucket returned no x-amz-version-id"
  s3 GET "/$PROBE_BUCKET/locked?retention=&versionId=$version"
  finding "COMPLIANCE PUT -> 200, version $version, retention $(xml_values Mode) until $(xml_values RetainUntilDate)"
  s3 DELETE "/$PROBE_BUCKET/locked?versionId=$version"
  if [[ $S3_STATUS == 403 ]]; then
    finding "DELETE ?versionId= of the retained version -> 403 $(error_code) ($(xml_values Message))"
  else
    die "DELETE of a COMPLIANCE-retained version was not refused: HTTP $S3_STATUS"
  fi
  s3 DELETE "/$PROBE_BUCKET/locked"
  finding "plain DELETE (no versionId) -> $S3_STATUS, x-amz-delete-marker: $(header x-amz-delete-marker), new version $(header x-amz-version-id)"
  s3 GET "/$PROBE_BUCKET/locked"
  t=$S3_STATUS
  s3 GET "/$PROBE_BUCKET/locked?versionId=$version"
  finding "after it: GET -> $t, GET ?versionId= of the retained version -> $S3_STATUS"
  s3 PUT "/$PROBE_BUCKET/no-md5" --body "$body" \
    -H 'x-amz-object-lock-mode: COMPLIANCE' -H "x-amz-object-lock-retain-until-date: $until"
  finding "COMPLIANCE PUT without Content-MD5 -> $S3_STATUS $(error_code)"
}

cmd_start() {
  local t0=$EPOCHREALTIME f
  if [[ -d $DIR/pids ]]; then
    for f in "$DIR"/pids/*.pid; do
      [[ -f $f ]] || continue
      ours "$(<"$f")" && die "a cluster is already running under $DIR; run: $0 stop $DIR"
    done
  fi
  rm -rf "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/rgw" "$DIR/log" "$DIR/pids" "$DIR/crash" \
    "$DIR/tmp" "$DIR/monmap" "$DIR/keyring" "$DIR/env" "$DIR/verify.log" "$CONF"
  mkdir -p "$DIR"/{mon/a,osd/0,run,rgw,log,pids,crash,tmp}

  local fsid mon_port rgw_port
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  read -r mon_port rgw_port < <(free_ports 2)
  ENDPOINT=http://127.0.0.1:$rgw_port
  write_conf "$fsid" "$mon_port" "$rgw_port"
  log "fsid $fsid, monitor 127.0.0.1:$mon_port, radosgw $ENDPOINT, conf $CONF"

  trap on_start_failure EXIT
  set -E
  trap 'log "failed: line $LINENO: $BASH_COMMAND"' ERR

  # Monitor. mkfs wants a keyring even though cephx is off.
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$DIR/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  rm -f "$DIR/log/mon..log"  # ceph-authtool -n mon. opens the [mon] log file
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
    --enable-all-features "$DIR/monmap" >>"$DIR/log/mkfs.log" 2>&1
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >>"$DIR/log/mkfs.log" 2>&1
  spawn mon ceph-mon -c "$CONF" -i a
  wait_for "the monitor" mon_up
  log "monitor up after $(elapsed "$t0") s"

  # One OSD on memstore. No manager (see "mon mgr mkfs grace").
  local osd_uuid osd_id
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  osd_id=$(ceph_cli osd new "$osd_uuid")
  [[ $osd_id == 0 ]] || die "expected osd id 0, got '$osd_id'"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.log" 2>&1
  spawn osd ceph-osd -c "$CONF" -i 0
  wait_for "osd.0 to be up and in" osd_up
  log "osd.0 up after $(elapsed "$t0") s"

  # radosgw creates its pools and the default zonegroup/zone on first start.
  spawn rgw radosgw -c "$CONF" -n client.rgw.a
  wait_for "radosgw to answer HTTP on $ENDPOINT" rgw_up
  log "radosgw answers after $(elapsed "$t0") s"

  timeout 60 radosgw-admin -c "$CONF" user create --uid="$USER_ID" \
    --display-name="dagvault test user" --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" \
    >>"$DIR/log/radosgw-admin.log" 2>&1 || die "radosgw-admin user create failed (see $DIR/log/radosgw-admin.log)"
  log "S3 user $USER_ID created"

  : >"$DIR/verify.log"
  pick_region
  create_buckets
  local t_ready
  t_ready=$(elapsed "$t0")
  if [[ ${CEPH_RGW_SKIP_VERIFY:-0} != 1 ]]; then
    verify
  fi

  local rss total=0 name pid
  for name in mon osd rgw; do
    pid=$(<"$DIR/pids/$name.pid")
    rss=$(ps -o rss= -p "$pid" | tr -d ' ')
    total=$((total + rss))
    finding "RSS of $name (pid $pid): $((rss / 1024)) MiB"
  done
  finding "RSS of the three daemons: $((total / 1024)) MiB"
  finding "start: ready (buckets created) after $t_ready s, self-test done after $(elapsed "$t0") s"

  cat >"$DIR/env" <<EOF
DAGVAULT_S3_ENDPOINT=$ENDPOINT
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
DAGVAULT_S3_BUCKET=$BUCKET
DAGVAULT_S3_LOCKED_BUCKET=$LOCKED_BUCKET
DAGVAULT_S3_REGION=$REGION
EOF
  trap - EXIT ERR
  log "up; stop with: $0 stop $DIR"
  cat "$DIR/env"
}

case $cmd in
  start) cmd_start ;;
  stop) cmd_stop ;;
esac
