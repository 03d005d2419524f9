# dagvault_test(NAME SRCS a_test.cc ... DEPS lib ... [LABELS long] [TIMEOUT s])
#
# One GoogleTest binary registered with CTest. Tests labelled "long" run only
# under ./tests/run.sh --long. Test binaries find the project's other binaries
# through DAGVAULT_BIN_DIR, so multi-process tests start the real daemons.
function(dagvault_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
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
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
