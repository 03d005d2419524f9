# Compiler warnings and sanitizers, applied to every target of the project
# (not to generated protobuf code, see dagvault_proto_library).

# The fuzz build (tests/fuzz): clang, with every library instrumented for
# libFuzzer's coverage and for ASan and UBSan; the fuzz targets themselves
# link -fsanitize=fuzzer. Warnings stay warnings there: clang warns about
# things gcc's -Werror build does not, and that build is the one that gates.
if(DAGVAULT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "DAGVAULT_FUZZ needs clang: CC=clang CXX=clang++ cmake ...")
  endif()
  set(DAGVAULT_WERROR OFF)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all -Wno-unknown-warning-option)
  add_link_options(-fsanitize=address,undefined)
  message(STATUS "dagvault: fuzz build (libFuzzer, address, undefined)")
endif()

set(DAGVAULT_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
    -Wimplicit-fallthrough -Wno-missing-field-initializers)
if(DAGVAULT_WERROR)
  list(APPEND DAGVAULT_WARNING_FLAGS -Werror)
endif()

if(DAGVAULT_SANITIZE)
  string(REPLACE "," ";" _dagvault_sanitizers "${DAGVAULT_SANITIZE}")
  foreach(_s IN LISTS _dagvault_sanitizers)
    add_compile_options(-fsanitize=${_s})
    add_link_options(-fsanitize=${_s})
  endforeach()
  add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=all)
  message(STATUS "dagvault: sanitizers ${DAGVAULT_SANITIZE}")
endif()

# Applies the project's warnings to a target we wrote ourselves.
function(dagvault_warnings target)
  target_compile_options(${target} PRIVATE ${DAGVAULT_WARNING_FLAGS})
endfunction()

# A library of the project: warnings on, include root at the source tree top
# so that includes read "common/status_macros.h".
function(dagvault_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  dagvault_warnings(${name})
endfunction()

function(dagvault_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  dagvault_warnings(${name})
endfunction()
