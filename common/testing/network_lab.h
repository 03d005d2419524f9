// Hosts for multi-process tests, each in its own network namespace: a
// bridge in this (the test's) namespace, and per host a namespace joined to
// it by a veth pair, with its own address on a private /24. Processes of a
// host start under `ip netns exec` (Prefix()), so they see only their own
// loopback and the bridge; the test reaches every host through the bridge.
// Cut() takes a host's link down (every connection to and from it goes
// silent, as a pulled cable does) and Heal() brings it back. Needs root;
// everything is deleted at the end. Never touches any other interface.
//
// The bridge and veth ends live in the machine's own namespace, so other
// programs see them come and go (headless Chromium may abandon a page load
// with net::ERR_NETWORK_CHANGED). A test binary that uses this class is
// registered with HOST_NETWORK (cmake/DagvaultTest.cmake), which keeps it
// from running beside the console's browser test.
#pragma once

#include <string>
#include <vector>

namespace dagvault::testing {

class NetworkLab {
 public:
  explicit NetworkLab(int hosts);
  ~NetworkLab();
  NetworkLab(const NetworkLab&) = delete;
  NetworkLab& operator=(const NetworkLab&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // The test's own address on the bridge.
  const std::string& bridge_address() const { return bridge_address_; }
  // Host i's address (0-based).
  const std::string& address(int i) const { return addresses_[static_cast<size_t>(i)]; }
  // What to put before a command to run it on host i.
  std::vector<std::string> Prefix(int i) const;

  // Host i's link down / up. False (with error()) when `ip` failed.
  bool Cut(int i);
  bool Heal(int i);

 private:
  bool Ip(const std::string& args);

  std::string prefix_;  // dv<k>: names of the bridge, links and namespaces
  std::string bridge_address_;
  std::vector<std::string> addresses_, namespaces_, links_;
  bool bridge_made_ = false;
  std::string error_;
};

}  // namespace dagvault::testing
