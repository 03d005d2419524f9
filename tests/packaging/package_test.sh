#!/usr/bin/env bash
# The Debian packages (docs/packages.md), end to end: build them with CPack
# from the build folder, check them with lintian (no errors), install them
# into a scratch root, and run the installed binaries with the installed
# example configurations: a CA and certificates by the installed `dagvault`,
# the installed mailstored with mailstore's example (node2), the installed
# coordinator and agent with theirs, until the installed command line sees
# node2 report its copies.
#
#   tests/packaging/package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/dagvault-packages.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# DAGVAULT_KEEP_PACKAGE_TEST=1 leaves the scratch folder for a look.
[[ -n ${DAGVAULT_KEEP_PACKAGE_TEST:-} ]] && trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; echo "left $work"' EXIT
fail() { echo "package_test: $*" >&2; exit 1; }

echo "== building the packages"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/debs" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
debs=("$work"/debs/*.deb)
names=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Package; done | sort | tr '\n' ' ')
[[ $names == "dagvault-agent dagvault-cli dagvault-coordinator mailstore " ]] ||
  fail "expected the four packages, built: $names"
for d in "${debs[@]}"; do
  printf '   %-34s %s\n' "$(basename "$d")" "Depends: $(dpkg-deb -f "$d" Depends)"
done
dpkg-deb -f "$work"/debs/dagvault-coordinator_*.deb Depends | grep -q adduser ||
  fail "dagvault-coordinator must depend on adduser (its postinst creates the user dagvault)"

echo "== lintian"
# --fail-on error: warnings (no manual page yet) are listed, not fatal.
lintian_status=0
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" >"$work/lintian.log" 2>&1 ||
  lintian_status=$?
grep -v 'root privileges' "$work/lintian.log" || true
((lintian_status == 0)) || fail "lintian found errors (above)"

echo "== maintainer scripts"
for d in "${debs[@]}"; do
  dpkg-deb -e "$d" "$work/control-$(dpkg-deb -f "$d" Package)"
done
for pkg in dagvault-agent dagvault-coordinator mailstore; do
  for script in postinst prerm postrm; do
    [[ -x $work/control-$pkg/$script ]] || fail "$pkg has no $script"
    sh -n "$work/control-$pkg/$script" || fail "$pkg's $script does not parse"
  done
done
grep -q 'systemctl stop dagvault-agent.service' "$work/control-dagvault-agent/prerm" ||
  fail "dagvault-agent's prerm does not stop its daemon"
grep -q 'adduser --system --group' "$work/control-dagvault-coordinator/postinst" ||
  fail "the coordinator's postinst does not create its system user"

echo "== installing into a scratch root"
root=$work/root
for d in "${debs[@]}"; do dpkg-deb -x "$d" "$root"; done
for bin in dagvault dagvault-agent dagvault-coordinator mailstored mailstore-util; do
  [[ -x $root/usr/bin/$bin ]] || fail "/usr/bin/$bin is not installed"
done
units=$root/lib/systemd/system
grep -q '^ExecStart=/usr/bin/dagvault-coordinator ' "$units/dagvault-coordinator.service" ||
  fail "the coordinator's unit does not start /usr/bin/dagvault-coordinator"
grep -q '^User=dagvault$' "$units/dagvault-coordinator.service" ||
  fail "the coordinator's unit does not run as dagvault"
grep -q '^Type=notify$' "$units/mailstored.service" || fail "mailstored's unit is not Type=notify"
# Every Documentation= of every unit names an installed file.
for unit in "$units"/*.service; do
  while read -r doc; do
    [[ -f $root${doc#file://} ]] || fail "$(basename "$unit"): Documentation=$doc is not installed"
  done < <(sed -n 's/^Documentation=//p' "$unit")
done
for tool in dagvault dagvault-agent; do
  grep -q "complete -F _${tool//-/_} $tool" "$root/usr/share/bash-completion/completions/$tool" ||
    fail "no bash completion for $tool"
done
for pkg in dagvault-agent dagvault-cli dagvault-coordinator mailstore; do
  [[ -f $root/usr/share/doc/$pkg/copyright && -f $root/usr/share/doc/$pkg/changelog.Debian.gz ]] ||
    fail "$pkg has no copyright or changelog"
done

echo "== running the installed binaries with the installed example configurations"
ports=($(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
))
store=${ports[0]} replication=${ports[1]} coordinator=${ports[2]} coordinator_metrics=${ports[3]}
agent_metrics=${ports[4]} peer1=${ports[5]} peer3=${ports[6]}
# What systemd makes from the units (StateDirectory=, RuntimeDirectory=)
# and an operator before the first start (the data and backup folders).
mkdir -p "$root/etc/dagvault" "$root/etc/mailstored" "$root/var/lib/dagvault" \
  "$root/var/lib/dagvault-agent" "$root/run/mailstored" "$root/srv/mailstore" "$root/backup"
# The examples' paths, moved into the scratch root; their addresses, onto
# free ports of this machine. Nothing else in them changes.
relocate() {
  sed -e "s#\"/etc/#\"$root/etc/#g" -e "s#\"/var/lib/#\"$root/var/lib/#g" \
    -e "s#\"/run/#\"$root/run/#g" -e "s#\"/srv/#\"$root/srv/#g" \
    -e "s#\"/backup/#\"$root/backup/#g" \
    -e "s#10.0.0.2:7101#127.0.0.1:$store#; s#10.0.0.2:7102#127.0.0.1:$replication#" \
    -e "s#10.0.0.1:7102#127.0.0.1:$peer1#; s#10.0.0.1:7101#127.0.0.1:$peer1#" \
    -e "s#10.0.0.3:7102#127.0.0.1:$peer3#; s#10.0.0.3:7101#127.0.0.1:$peer3#" \
    -e "s#0.0.0.0:7180#127.0.0.1:$coordinator#; s#coord.example.net:7180#127.0.0.1:$coordinator#" \
    "$1"
}
docs=$root/usr/share/doc
relocate "$docs/mailstore/examples/mailstored.conf" >"$root/etc/mailstored/mailstored.conf"
relocate "$docs/dagvault-coordinator/examples/coordinator.conf" |
  sed "s#0.0.0.0:9464#127.0.0.1:$coordinator_metrics#" >"$root/etc/dagvault/coordinator.conf"
relocate "$docs/dagvault-agent/examples/agent.conf" |
  sed "s#0.0.0.0:9464#127.0.0.1:$agent_metrics#" >"$root/etc/dagvault/agent.conf"

dv=$root/usr/bin/dagvault
certs=$root/etc/dagvault/certs
"$dv" certs init --dir "$certs" >/dev/null
"$dv" certs issue --dir "$certs" --name coordinator --role coordinator --san 127.0.0.1 >/dev/null
"$dv" certs issue --dir "$certs" --name node2 --role node --san 127.0.0.1 >/dev/null
"$dv" certs issue --dir "$certs" --name admin --role admin >/dev/null
head -c 32 /dev/urandom | base64 >"$root/etc/dagvault/repo.pass"
chmod 600 "$root/etc/dagvault/repo.pass"
"$dv" repo init --repo "$root/backup/dagvault" --passphrase-file "$root/etc/dagvault/repo.pass" \
  >/dev/null

"$root/usr/bin/mailstored" --config "$root/etc/mailstored/mailstored.conf" \
  --log-file "$work/mailstored.log" >"$work/mailstored.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -S $root/run/mailstored/writer.sock ]] && break; sleep 0.1; done
[[ -S $root/run/mailstored/writer.sock ]] ||
  { tail -n 20 "$work/mailstored.out" >&2; fail "mailstored did not open its writer socket"; }
"$root/usr/bin/dagvault-coordinator" --config "$root/etc/dagvault/coordinator.conf" \
  >"$work/coordinator.out" 2>&1 &
pids+=($!)
"$root/usr/bin/dagvault-agent" --config "$root/etc/dagvault/agent.conf" >"$work/agent.out" 2>&1 &
pids+=($!)

export DAGVAULT_COORDINATOR=127.0.0.1:$coordinator DAGVAULT_CERTS=$certs
for _ in $(seq 150); do
  if "$dv" status --copies --json >"$work/status.json" 2>/dev/null || [[ -s $work/status.json ]]; then
    if python3 - "$work/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
nodes = {n["node"]: n.get("reporting", False) for n in s.get("nodes", [])}
copies = [c["status"]["unit"] for c in s.get("copies", []) if c["status"]["node"] == "node2"]
sys.exit(0 if nodes.get("node2") and sorted(copies) == ["DB02", "SG01"] else 1)
PY
    then
      echo "   node2 reports its copies of DB02 and SG01 to the installed coordinator"
      "$root/usr/bin/mailstore-util" status --server "127.0.0.1:$store" >"$work/util.out" 2>&1 ||
        true  # exit 1 while the copies cannot reach node1: the listing is what counts
      grep -q SG01 "$work/util.out" && grep -q DB02 "$work/util.out" ||
        { cat "$work/util.out" >&2; fail "the installed mailstore-util does not list node2's units"; }
      echo "   the installed mailstore-util lists them from the installed mailstored"
      echo "== the packages install and run"
      exit 0
    fi
  fi
  sleep 0.2
done
tail -n 20 "$work/coordinator.out" "$work/agent.out" "$work/mailstored.out" >&2
fail "node2 did not report its copies within 30 s"
