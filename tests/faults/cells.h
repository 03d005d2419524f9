// The two kinds of cell (backup_cell.cc, restore_cell.cc).
#pragma once

#include "tests/faults/fault_matrix.h"

namespace dagvault::testing::faults {

CellResult RunBackupCell(const Cell& cell);
CellResult RunRestoreCell(const Cell& cell);

}  // namespace dagvault::testing::faults
