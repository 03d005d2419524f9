// `dagvault catalog rebuild`: the catalog's backup records from the
// repository's manifests alone. The repository is the truth about what is
// stored; the catalog is an index of it that can always be thrown away and
// rebuilt (after a lost coordinator disk, or to check one against the
// other).
#pragma once

#include "coordinator/catalog/catalog.h"
#include "repository/repository.h"

namespace dagvault::coordinator {

// Replaces every backup record with one per manifest in `repo`, in one
// transaction. A manifest that cannot be read fails the rebuild, naming
// it, and the catalog is left as it was. Returns the number of backups.
absl::StatusOr<size_t> RebuildBackupsFromRepository(const repository::Repository& repo,
                                                    Catalog& catalog);

}  // namespace dagvault::coordinator
