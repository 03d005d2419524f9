#include "common/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace dagvault {

namespace {

void Notify(const std::string& state) {
  const int sent = sd_notify(0, state.c_str());
  if (sent < 0) {
    logging::Get("systemd")->warn("sd_notify({}) failed: error {}", state, -sent);
  }
}

}  // namespace

void NotifyReady(const std::string& status) { Notify(absl::StrCat("READY=1\nSTATUS=", status)); }

void NotifyStopping() { Notify("STOPPING=1"); }

}  // namespace dagvault
