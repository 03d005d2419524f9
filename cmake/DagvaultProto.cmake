# dagvault_proto_library(NAME PROTOS a.proto b.proto [GRPC])
#
# Generates C++ for the given .proto files (paths relative to
# ${PROJECT_SOURCE_DIR}/proto) and builds them into one static library.
# With GRPC, service stubs are generated too. Generated headers are included
# as "dagvault/v1/foo.pb.h".
function(dagvault_proto_library name)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS" ${ARGN})
  set(_proto_root ${PROJECT_SOURCE_DIR}/proto)
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${_out})
  get_target_property(_grpc_plugin gRPC::grpc_cpp_plugin LOCATION)

  set(_srcs)
  foreach(_proto IN LISTS ARG_PROTOS)
    get_filename_component(_dir ${_proto} DIRECTORY)
    get_filename_component(_stem ${_proto} NAME_WE)
    set(_generated ${_out}/${_dir}/${_stem}.pb.cc ${_out}/${_dir}/${_stem}.pb.h)
    set(_args --proto_path=${_proto_root} --cpp_out=${_out})
    if(ARG_GRPC)
      list(APPEND _generated ${_out}/${_dir}/${_stem}.grpc.pb.cc ${_out}/${_dir}/${_stem}.grpc.pb.h)
      list(APPEND _args --grpc_out=${_out} --plugin=protoc-gen-grpc=${_grpc_plugin})
    endif()
    add_custom_command(
      OUTPUT ${_generated}
      COMMAND protobuf::protoc ${_args} ${_proto_root}/${_proto}
      DEPENDS ${_proto_root}/${_proto} protobuf::protoc
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
