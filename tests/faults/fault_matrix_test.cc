// The fault matrix's runs (fault_matrix.h). The default suite runs a
// representative slice; with DAGVAULT_FAULT_CELLS=all (./tests/run.sh
// --long) every cell. DAGVAULT_FAULT_CELL=TEXT runs only the cells whose
// name contains TEXT. With DAGVAULT_FAULT_REPOSITORY=s3 (--long runs the
// slice so) each cell's repository is in the run's S3 bucket. Prints the table; every cell must
// strike and leave no invariant violated.
#include "tests/faults/fault_matrix.h"

#include <cstdlib>
#include <iostream>
#include <string>

#include "gtest/gtest.h"
#include "tests/faults/cell_run.h"

namespace dagvault::testing::faults {
namespace {

TEST(FaultMatrix, EveryCellStrikesAndLeavesEveryInvariantStanding) {
  const char* which = std::getenv("DAGVAULT_FAULT_CELLS");
  const char* only = std::getenv("DAGVAULT_FAULT_CELL");
  std::vector<Cell> cells =
      which != nullptr && std::string(which) == "all" ? AllCells() : SliceCells();
  std::vector<CellResult> results;
  for (const Cell& cell : cells) {
    if (only != nullptr && cell.Name().find(only) == std::string::npos) continue;
    if (RepositoryOnS3() && !WhyNotOnS3(cell).empty()) {
      std::cout << "cell " << cell.Name() << ": not run on S3 (" << WhyNotOnS3(cell) << ")"
                << std::endl;
      continue;
    }
    std::cout << "cell " << cell.Name() << " ..." << std::endl;
    results.push_back(RunCell(cell));
    const CellResult& r = results.back();
    std::cout << "cell " << cell.Name() << ": " << (r.injected ? "struck" : "NOT STRUCK") << ", "
              << r.violations.size() << " violation(s), " << r.seconds
              << " s; job: " << r.job_outcome << std::endl;
  }
  std::cout << "\n" << Table(results) << std::endl;
  for (const CellResult& r : results) {
    EXPECT_TRUE(r.injected) << r.cell.Name() << ": the job never reached the step";
    EXPECT_TRUE(r.violations.empty()) << r.cell.Name() << ": " << r.violations.front();
  }
}

}  // namespace
}  // namespace dagvault::testing::faults
