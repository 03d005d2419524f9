# dagvault_test(NAME SRCS a_test.cc ... DEPS lib ... [LABELS long] [TIMEOUT s]
#               [COST s] [HOST_NETWORK])
#
# One GoogleTest binary registered with CTest. Tests labelled "long" run only
# under ./tests/run.sh --long. Test binaries find the project's other binaries
# through DAGVAULT_BIN_DIR, so multi-process tests start the real daemons.
#
# COST: about how many seconds the test takes on the 2-core CI machine.
# CTest starts the costliest tests first when it has no timings of its own
# (a fresh clone, as in CI; later runs use build/Testing/Temporary/
# CTestCostData.txt instead), so a long test does not end the run alone
# while the other core idles. Only the order matters, not the figure.
#
# HOST_NETWORK: the test adds, cuts or removes links in this machine's own
# network namespace (common/testing/network_lab.h), or drives a program that
# reacts to such changes (Chromium may abandon a page load with
# net::ERR_NETWORK_CHANGED when a link comes or goes). CTest runs no two
# such tests at once: they share the lock "host_network".
function(dagvault_test name)
  cmake_parse_arguments(ARG "HOST_NETWORK" "TIMEOUT;COST" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    DAGVAULT_BIN_DIR="${PROJECT_BINARY_DIR}/bin"
    DAGVAULT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  dagvault_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  if(ARG_COST)
    set_tests_properties(${name} PROPERTIES COST ${ARG_COST})
  endif()
  if(ARG_HOST_NETWORK)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK host_network)
  endif()
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
