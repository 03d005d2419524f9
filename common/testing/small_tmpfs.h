// A small tmpfs mounted in a test's folder, which the test can fill up to
// see what a full disk does to the code that writes there (the catalog,
// the repository, a log volume). Unmounted at the end. Needs root.
#pragma once

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/subprocess.h"

namespace dagvault::testing {

class SmallTmpfs {
 public:
  SmallTmpfs(std::string path, uint64_t bytes) : path_(std::move(path)) {
    if (::geteuid() != 0) {
      error_ = "mounting a tmpfs needs root";
      return;
    }
    ProcessResult r = Shell(absl::StrCat("mkdir -p ", path_, " && mount -t tmpfs -o size=", bytes,
                                         " dagvault-test ", path_));
    if (!r.ok()) {
      error_ = absl::StrCat("could not mount a tmpfs at ", path_, ": ", r.err);
      return;
    }
    mounted_ = true;
  }
  ~SmallTmpfs() {
    if (mounted_) (void)Shell("umount -l " + path_);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;

  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  // Takes every free byte (a file that grows until the filesystem is full).
  bool Fill() {
    (void)Shell(absl::StrCat("dd if=/dev/zero of=", Filler(), " bs=64k 2>/dev/null"));
    return Shell(absl::StrCat("test -s ", Filler())).ok();
  }
  // Gives the room back.
  void Unfill() { (void)Shell("rm -f " + Filler()); }

 private:
  std::string Filler() const { return path_ + "/.filler"; }
  static ProcessResult Shell(const std::string& command) {
    return RunProcess({"/bin/sh", "-c", "PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + command});
  }

  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace dagvault::testing
