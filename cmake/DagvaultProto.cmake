# dagvault_proto_library(NAME PROTOS a.proto b.proto [GRPC]
#                        [PROTO_PATHS dir | virtual=dir ...])
#
# Generates C++ for the given .proto files and builds them into one static
# library. Without PROTO_PATHS the files are relative to
# ${PROJECT_SOURCE_DIR}/proto; with it, they are looked up in those import
# roots, which use protoc's own syntax: `dir`, or `virtual=dir` to map an
# import prefix onto a folder (etcd's files import "etcd/mvcc/..." but ship
# under go.etcd.io/etcd/). With GRPC, service stubs are generated too.
# Generated headers are included by the .proto's import path, such as
# "dagvault/v1/foo.pb.h" or "etcd/etcdserver/etcdserverpb/rpc.pb.h".
function(dagvault_proto_library name)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;PROTO_PATHS" ${ARGN})
  if(NOT ARG_PROTO_PATHS)
    set(ARG_PROTO_PATHS ${PROJECT_SOURCE_DIR}/proto)
  endif()
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${_out})
  get_target_property(_grpc_plugin gRPC::grpc_cpp_plugin LOCATION)

  set(_path_args)
  foreach(_root IN LISTS ARG_PROTO_PATHS)
    list(APPEND _path_args --proto_path=${_root})
  endforeach()

  set(_srcs)
  foreach(_proto IN LISTS ARG_PROTOS)
    # The file on disk, for the build's dependency: the first import root
    # that holds it.
    set(_file)
    foreach(_root IN LISTS ARG_PROTO_PATHS)
      if(_root MATCHES "^([^=]+)=(.+)$")
        set(_prefix "${CMAKE_MATCH_1}/")
        set(_dir "${CMAKE_MATCH_2}")
        string(LENGTH "${_prefix}" _prefix_length)
        string(SUBSTRING "${_proto}" 0 ${_prefix_length} _head)
        if(_head STREQUAL _prefix)
          string(SUBSTRING "${_proto}" ${_prefix_length} -1 _rest)
          set(_candidate ${_dir}/${_rest})
        else()
          continue()
        endif()
      else()
        set(_candidate ${_root}/${_proto})
      endif()
      if(EXISTS ${_candidate})
        set(_file ${_candidate})
        break()
      endif()
    endforeach()
    if(NOT _file)
      message(FATAL_ERROR "${name}: ${_proto} is in none of ${ARG_PROTO_PATHS} "
                          "(run ./deploy/install-deps.sh)")
    endif()

    get_filename_component(_dir ${_proto} DIRECTORY)
    get_filename_component(_stem ${_proto} NAME_WE)
    set(_generated ${_out}/${_dir}/${_stem}.pb.cc ${_out}/${_dir}/${_stem}.pb.h)
    set(_args ${_path_args} --cpp_out=${_out})
    if(ARG_GRPC)
      list(APPEND _generated ${_out}/${_dir}/${_stem}.grpc.pb.cc ${_out}/${_dir}/${_stem}.grpc.pb.h)
      list(APPEND _args --grpc_out=${_out} --plugin=protoc-gen-grpc=${_grpc_plugin})
    endif()
    add_custom_command(
      OUTPUT ${_generated}
      COMMAND protobuf::protoc ${_args} ${_proto}
      DEPENDS ${_file} protobuf::protoc
      COMMENT "protoc ${_proto}"
      VERBATIM)
    list(APPEND _srcs ${_generated})
  endforeach()

  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} SYSTEM PUBLIC ${_out})
  target_link_libraries(${name} PUBLIC protobuf::libprotobuf)
  if(ARG_GRPC)
    target_link_libraries(${name} PUBLIC gRPC::grpc++)
  endif()
endfunction()
