// The filesystem backend of ObjectStore: a key is a path under the
// repository's folder (local, or shared such as NFS). Writes are durable
// on return: a temporary file, fsync, then rename (Replace) or link
// (PutIfAbsent, which never replaces), then an fsync of the folder.
#pragma once

#include <string>

#include "repository/object_store.h"

namespace dagvault::repository {

class FilesystemObjectStore : public ObjectStore {
 public:
  explicit FilesystemObjectStore(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }

  std::string location() const override { return root_; }
  std::string Name(const std::string& key) const override;
  absl::Status PutIfAbsent(const std::string& key, absl::string_view data,
                           const PutOptions& options = {}) const override;
  absl::Status Replace(const std::string& key, absl::string_view data) const override;
  absl::StatusOr<std::string> Get(const std::string& key) const override;
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                       uint64_t length) const override;
  absl::StatusOr<absl::Span<char>> GetRangeInto(const std::string& key, uint64_t offset,
                                                uint64_t length,
                                                AlignedBuffer* buffer) const override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) const override;
  // One walk of the folder the prefix names; max_keys 0 returns every key
  // in one page.
  absl::StatusOr<ObjectPage> List(const std::string& prefix, const std::string& token,
                                  size_t max_keys) const override;
  absl::Status Delete(const std::string& key) const override;
  absl::StatusOr<size_t> RemoveIncomplete(absl::Time before) const override;

 private:
  // The key's path, or an error for a key that would leave the folder.
  absl::StatusOr<std::string> PathOf(const std::string& key) const;

  std::string root_;
};

}  // namespace dagvault::repository
