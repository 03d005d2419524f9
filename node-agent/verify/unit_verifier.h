// The requestor's consistency check (DESIGN.md §5), run inline on the bytes
// the backup reads: no second pass over the snapshot.
//
//   - every .edb page: its checksum, its page number, its type and format
//     (Full and Copy); the header pages' signatures against the frozen ones;
//   - every log: header checksum, generation, size and log signature, then
//     every record (checksum, position, type, zero padding) up to the Seal,
//     and nothing but zeros after it;
//   - the logs' generations contiguous and each log's link hash equal to the
//     SHA-256 of the log before it, including the join to the backup this
//     one follows.
//
// The checker reads the formats of docs/formats.md itself: the agent
// reaches mailstore only through the writer protocol and its documented
// file formats, as a Windows requestor reaches ESE's files. Errors name
// the file and the page, offset or generation at fault.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/writer.pb.h"
#include "repository/backup.h"

namespace dagvault::agent {

// A backup whose logs do not continue the chain it follows fails with this
// payload: the first generation the chain cannot reach (decimal), so that
// the coordinator records the break and promotes the next Incremental.
inline constexpr char kChainBreakPayload[] = "type.dagvault.dev/chain-break-generation";
// The generation of a chain-break failure, or 0.
uint32_t ChainBreakGenerationOf(const absl::Status& status);

// What the writer said when it froze the unit, and the backup this one
// follows.
struct UnitExpectations {
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  std::string log_signature;                     // hex, as FreezeResponse has it
  std::vector<std::string> database_signatures;  // hex
  uint32_t checkpoint_generation = 0;
  uint32_t low_generation = 0;
  uint32_t high_generation = 0;
  // The log the first new generation must link to: the high generation of
  // the backup an Incremental or Differential follows and the SHA-256 of
  // its file. 0: none (a Full or Copy starts a chain).
  uint32_t join_generation = 0;
  std::string join_sha256;  // 32 bytes
  // The SHA-256 of each log of that backup, by generation: when the logs
  // do not join, the first generation whose log differs is where the
  // stream diverged (a lossy activation), and the chain breaks there.
  std::map<uint32_t, std::string> chain_log_sha256;
};

struct VerifySummary {
  uint64_t pages = 0;        // pages checked
  uint64_t empty_pages = 0;  // never written (all zeros)
  uint64_t logs = 0;
  uint64_t log_records = 0;
  absl::Duration cpu;  // CPU time the checks took, summed over the workers
};

class UnitVerifier : public repository::BackupObserver {
 public:
  // `files` as given to repository::Backup; `sources` the writer's paths,
  // for the errors. Reads each database's header page to learn its page
  // size (the segments arrive in any order).
  static absl::StatusOr<std::unique_ptr<UnitVerifier>> Create(
      UnitExpectations expect, const std::vector<repository::BackupFile>& files,
      const std::vector<std::string>& sources);

  absl::Status OnSegment(size_t file, uint64_t offset, absl::string_view data) override;
  // Every file seen whole; the logs contiguous from the frozen low to high
  // generation and linked; fills each log's link_hash in the manifest.
  absl::Status BeforeCommit(dagvault::v1::Manifest* manifest) override;

  VerifySummary summary() const;
  // The file a worker read last: for progress.
  std::string current_file() const;

 private:
  struct FileCheck {
    std::string role;
    std::string name;
    std::string source;
    uint32_t generation = 0;
    uint64_t size = 0;
    uint32_t page_size = 0;  // databases
    uint64_t seen = 0;
    std::string assembled;  // a log larger than one segment
    uint64_t assembled_bytes = 0;
    std::string link_hash;  // logs, once checked
    bool checked = false;
    // Databases, from header copy 0 once its page checked: the state and
    // the log generations the file needs to be made consistent.
    bool header_read = false;
    uint32_t state = 0;
    uint32_t log_required_min = 0;
    uint32_t log_required_max = 0;
  };

  UnitVerifier(UnitExpectations expect) : expect_(std::move(expect)) {}
  // OnSegment's work; OnSegment adds the CPU time it took.
  absl::Status CheckSegment(size_t file, uint64_t offset, absl::string_view data);
  absl::Status CheckPages(const FileCheck& f, uint64_t offset, absl::string_view data,
                          VerifySummary* summary) const;
  absl::Status CheckHeaderPage(const FileCheck& f, uint64_t pgno, const uint8_t* page) const;
  absl::Status CheckLog(FileCheck& f, absl::string_view data, VerifySummary* summary) const;
  absl::Status CheckCheckpoint(const FileCheck& f, absl::string_view data) const;

  UnitExpectations expect_;
  std::vector<FileCheck> files_;
  mutable std::mutex mu_;  // files_[].seen/assembled/link_hash/checked, summary_, current_
  VerifySummary summary_;
  size_t current_ = 0;
};

}  // namespace dagvault::agent
