#include "coordinator/catalog/rebuild.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dagvault::coordinator {

absl::StatusOr<size_t> RebuildBackupsFromRepository(const repository::Repository& repo,
                                                    Catalog& catalog) {
  ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListManifests());
  // Expired backups whose prune has not finished stay out.
  ASSIGN_OR_RETURN(std::vector<std::string> expiring, catalog.Expiring());
  const std::set<std::string> skip(expiring.begin(), expiring.end());
  std::vector<BackupRecord> backups;
  backups.reserve(ids.size());
  for (const std::string& id : ids) {
    if (skip.count(id) != 0) continue;
    auto manifest = repo.ReadManifest(id);
    if (!manifest.ok()) {
      return absl::Status(
          manifest.status().code(),
          absl::StrCat("catalog rebuild: manifest ", id,
                       " cannot be read, so nothing was changed: ", manifest.status().message()));
    }
    backups.push_back(BackupRecordOf(*manifest));
  }
  RETURN_IF_ERROR(catalog.ReplaceBackups(backups));
  return backups.size();
}

}  // namespace dagvault::coordinator
