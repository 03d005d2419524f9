#include "node-agent/daemon/kept_results.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/cli_support.h"

namespace dagvault::agent {

absl::StatusOr<KeptResults> LoadKeptResults(const std::string& path, const std::string& repository,
                                            const std::string& passphrase_file,
                                            const std::string& key_file) {
  KeptResults out;
  RETURN_IF_ERROR(CreateDirectories(DirName(path), 0700));
  if (!PathExists(path)) return out;
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  dagvault::v1::UndeliveredResults kept;
  if (!kept.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(
        "state file ", path,
        " (results not yet acknowledged by the coordinator) does not parse; move it aside to "
        "start, then run `dagvault catalog rebuild` so that the coordinator learns of any "
        "backup whose result it held"));
  }
  out.updates.assign(kept.updates().begin(), kept.updates().end());
  // A backup that was about to commit when this agent stopped: reported
  // (as a verified backup whose completion was never delivered) only if its
  // manifest was written; else there is nothing to report.
  if (kept.pending_size() == 0) return out;
  auto repo = repository::OpenRepositoryWithSecretFiles(repository, passphrase_file, key_file);
  for (const auto& p : kept.pending()) {
    if (!repo.ok()) {
      out.unsure.push_back(p);
      continue;
    }
    auto m = repo->ReadManifest(p.result().manifest());
    if (m.ok()) {
      out.committed.push_back(p);
    } else if (absl::IsNotFound(m.status())) {
      logging::Get("agent")->info(
          "job {} attempt {}: stopped before its manifest {} was written; nothing to report",
          p.job(), p.attempt(), p.result().manifest());
    } else {
      out.unsure.push_back(p);
    }
  }
  if (!repo.ok()) {
    logging::Get("agent")->warn(
        "{} backup(s) were committing when the agent stopped; the repository does not open "
        "({}), so they are kept to be looked at again at the next start",
        out.unsure.size(), repo.status());
  }
  return out;
}

}  // namespace dagvault::agent
