// A repository driven through the real `dagvault repo` binary, each test in
// a temporary folder of its own: shared by repo_cli_test and the tampering
// suite.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository::testing {

// The manifest id a `dagvault repo backup` printed ("manifest ID: ...").
inline std::string ManifestIdOf(const std::string& out) {
  std::vector<std::string> words = absl::StrSplit(out, absl::ByAnyChar(" :"));
  return words.size() > 1 && words[0] == "manifest" ? words[1] : "";
}

class RepoCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(pass_, "a long passphrase\n");
    ASSERT_TRUE(CreateDirectories(dir_.Sub("src")).ok());
    ::dagvault::testing::ProcessResult r = Repo({"init"});
    ASSERT_TRUE(r.ok()) << r.err;
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {::dagvault::testing::BinaryPath("dagvault"), "repo"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--repo", repo_, "--passphrase-file", pass_});
    return argv;
  }
  ::dagvault::testing::ProcessResult Repo(const std::vector<std::string>& args) {
    return ::dagvault::testing::RunProcess(Argv(args));
  }

  // Backs up `name` (a database holding `data`, and a small log) and
  // returns the manifest id.
  std::string BackUp(const std::string& name, const std::string& data,
                     const std::string& unit = "DB01") {
    const std::string path = dir_.Sub("src/" + name);
    WriteFile(path, data);
    ::dagvault::testing::ProcessResult r =
        Repo({"backup", "--unit", unit, "--file", "database:" + path, "--file",
              "log:" + pass_ + ":E00.log", "--workers", "2"});
    EXPECT_TRUE(r.ok()) << r.err;
    return ManifestIdOf(r.out);
  }

  ::dagvault::testing::ProcessResult RestoreTo(const std::string& id, const std::string& to) {
    return Repo({"restore", id, "--to", to});
  }

  std::vector<std::string> Packs() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(repo_ + "/packs")) {
      if (e.is_regular_file()) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  ::dagvault::testing::TempDir dir_{"repo_cli"};
  std::string repo_ = dir_.Sub("repo");
  std::string pass_ = dir_.Sub("pass");
};

}  // namespace dagvault::repository::testing
