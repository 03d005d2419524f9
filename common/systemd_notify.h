// systemd readiness (Type=notify units, deploy/systemd/): a daemon says
// READY=1 once it serves, so that `systemctl start` returns then, and
// STOPPING=1 when it begins to stop. Through libsystemd's sd_notify; without
// $NOTIFY_SOCKET (not under systemd) nothing is sent.
#pragma once

#include <string>

namespace dagvault {

// READY=1 with a STATUS line ("listening on 0.0.0.0:7180").
void NotifyReady(const std::string& status);
void NotifyStopping();

}  // namespace dagvault
