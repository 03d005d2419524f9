#include "common/testing/network_lab.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/testing/subprocess.h"

namespace dagvault::testing {
namespace {

constexpr char kIp[] = "/usr/bin/ip";

ProcessResult Shell(const std::string& command) {
  return RunProcess({"/bin/sh", "-c", "PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + command});
}

}  // namespace

NetworkLab::NetworkLab(int hosts) {
  if (::geteuid() != 0) {
    error_ = "network namespaces need root";
    return;
  }
  // A /24 and names no other lab on this machine uses: 10.231.<k>.0/24.
  int k = static_cast<int>(::getpid() % 200) + 20;
  bool free = false;
  for (int tries = 0; tries < 50 && !free; ++tries) {
    if (tries > 0) k = k % 250 + 1;
    prefix_ = absl::StrCat("dv", k);
    free = !Shell(absl::StrCat("ip link show ", prefix_, "br >/dev/null 2>&1")).ok() &&
           !Shell(absl::StrCat("ip -4 addr | grep -q ' 10.231.", k, ".'")).ok();
  }
  if (!free) {
    error_ = "no free 10.231.k.0/24 and dv<k> names: remove stale dv* links and namespaces";
    return;
  }
  const std::string net = absl::StrCat("10.231.", k, ".");
  bridge_address_ = net + "1";
  if (!Ip(absl::StrCat("link add ", prefix_, "br type bridge"))) return;
  bridge_made_ = true;
  if (!Ip(absl::StrCat("addr add ", bridge_address_, "/24 dev ", prefix_, "br")) ||
      !Ip(absl::StrCat("link set ", prefix_, "br up"))) {
    return;
  }
  for (int i = 0; i < hosts; ++i) {
    const std::string ns = absl::StrCat(prefix_, "-", i);
    const std::string link = absl::StrCat(prefix_, "h", i);
    const std::string address = absl::StrCat(net, i + 2);
    if (!Ip("netns add " + ns)) return;
    namespaces_.push_back(ns);
    if (!Ip(absl::StrCat("link add ", link, " type veth peer name eth0 netns ", ns))) return;
    links_.push_back(link);
    addresses_.push_back(address);
    if (!Ip(absl::StrCat("link set ", link, " master ", prefix_, "br up")) ||
        !Ip(absl::StrCat("-n ", ns, " addr add ", address, "/24 dev eth0")) ||
        !Ip(absl::StrCat("-n ", ns, " link set eth0 up")) ||
        !Ip(absl::StrCat("-n ", ns, " link set lo up"))) {
      return;
    }
  }
}

NetworkLab::~NetworkLab() {
  for (const auto& link : links_) (void)Ip("link del " + link);
  for (const auto& ns : namespaces_) (void)Ip("netns del " + ns);
  if (bridge_made_) (void)Ip(absl::StrCat("link del ", prefix_, "br"));
}

std::vector<std::string> NetworkLab::Prefix(int i) const {
  // `ip netns exec` enters the namespace and then execs the command in the
  // same process, so the pid a test holds is the daemon's own.
  return {kIp, "netns", "exec", namespaces_[static_cast<size_t>(i)]};
}

bool NetworkLab::Cut(int i) {
  return Ip(absl::StrCat("link set ", links_[static_cast<size_t>(i)], " down"));
}

bool NetworkLab::Heal(int i) {
  return Ip(absl::StrCat("link set ", links_[static_cast<size_t>(i)], " up"));
}

bool NetworkLab::Ip(const std::string& args) {
  ProcessResult r = Shell(absl::StrCat(kIp, " ", args));
  if (!r.ok()) {
    error_ = absl::StrCat("ip ", args, ": ", r.err);
    return false;
  }
  return true;
}

}  // namespace dagvault::testing
