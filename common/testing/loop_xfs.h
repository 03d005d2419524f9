// A loop-mounted XFS filesystem (with reflink) in a test's temporary
// folder: an image file, mkfs.xfs, mount -o loop; unmounted, and its loop
// device released, at the end. Needs root and xfsprogs (tests/run.sh
// installs it).
#pragma once

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"

namespace dagvault::testing {

class LoopXfs {
 public:
  // `size_mib`: the image's size; it is sparse, so only what is written
  // takes space.
  explicit LoopXfs(uint64_t size_mib = 2048) : dir_("xfs") {
    if (::geteuid() != 0) {
      error_ = "loop mounts need root";
      return;
    }
    const std::string image = dir_.Sub("xfs.img");
    // Through the shell: RunProcess does not search PATH.
    ProcessResult r = Shell(absl::StrCat(
        "truncate -s ", size_mib, "M ", image, " && mkfs.xfs -q -m reflink=1 ", image,
        " && mkdir -p ", dir_.Sub("mnt"), " && mount -o loop ", image, " ", dir_.Sub("mnt")));
    if (!r.ok()) {
      error_ = absl::StrCat("could not make a loop-mounted XFS: ", r.err);
      return;
    }
    mounted_ = true;
  }
  ~LoopXfs() {
    // The loop device was set up with autoclear by mount: unmounting frees it.
    if (mounted_) (void)Shell("umount " + dir_.Sub("mnt"));
  }
  LoopXfs(const LoopXfs&) = delete;
  LoopXfs& operator=(const LoopXfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::string mount_point() const { return dir_.Sub("mnt"); }

 private:
  static ProcessResult Shell(const std::string& command) {
    return RunProcess({"/bin/sh", "-c", "PATH=/usr/sbin:/usr/bin:/sbin:/bin; " + command});
  }

  TempDir dir_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace dagvault::testing
