// mailstore-util: the eseutil analogue. See docs/mailstore-util.md.
#include <iostream>

#include "common/logging.h"
#include "mailstore/tools/util.h"

int main(int argc, char** argv) {
  // Tools print their results on stdout; engine log lines go to stderr and
  // only when they matter.
  dagvault::logging::Init({.level = "warn"});
  std::vector<std::string> args(argv + 1, argv + argc);
  return dagvault::mailstore::RunMailstoreUtil(args, std::cout, std::cerr);
}
