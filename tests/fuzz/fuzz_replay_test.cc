// Replays every committed seed (corpus/<target>/) and every input that once
// crashed a target (regressions/<target>/) through the target's entry
// function, built without libFuzzer: the default suite guards each fix.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

namespace fs = std::filesystem;

struct Target {
  const char* name;
  int (*fn)(const uint8_t*, size_t);
};

const Target kTargets[] = {
    {"log_format", FuzzLogFormat},
    {"edb_page", FuzzEdbPage},
    {"checkpoint", FuzzCheckpoint},
    {"repo_plaintext", FuzzRepoPlaintext},
    {"sealed_blob", FuzzSealedBlob},
    {"text_config", FuzzTextConfig},
    {"cron", FuzzCron},
    {"restore_names", FuzzRestoreNames},
};

std::vector<fs::path> Inputs(const std::string& target) {
  std::vector<fs::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(DAGVAULT_FUZZ_DIR) / kind / target;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzReplay : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, EveryCommittedInputRunsCleanly) {
  const Target& t = GetParam();
  const std::vector<fs::path> files = Inputs(t.name);
  EXPECT_FALSE(files.empty()) << "no seeds under tests/fuzz/corpus/" << t.name;
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.string());
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    // A broken invariant aborts with the file's name on stderr.
    std::fprintf(stderr, "replaying %s\n", path.c_str());
    EXPECT_EQ(t.fn(reinterpret_cast<const uint8_t*>(data.data()), data.size()), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, FuzzReplay, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<Target>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace dagvault::fuzz
