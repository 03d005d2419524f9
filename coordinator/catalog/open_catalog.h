// Which catalog a coordinator's `catalog` setting names: PostgreSQL for a
// libpq URI (postgresql://... or postgres://...) or a key=value connection
// string (it starts with a keyword and "=": host=db1 dbname=dagvault), an
// SQLite file for anything else (a path).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/catalog/catalog.h"

namespace dagvault::coordinator {

bool IsPostgresCatalog(const std::string& location);

// Opens (and migrates) the catalog.
absl::StatusOr<std::unique_ptr<Catalog>> OpenCatalog(const std::string& location);

// The setting as it may be logged: a password in a connection string or
// URI replaced by "***". (Prefer a ~/.pgpass file or $PGPASSWORD anyway.)
std::string CatalogForDisplay(const std::string& location);

}  // namespace dagvault::coordinator
