# Debian packages (docs/packages.md): install() rules and CPack.
#
#   dagvault-coordinator  the coordinator, its unit, the system user dagvault
#   dagvault-agent        the node agent and its unit (runs as root)
#   dagvault-cli          the operator's command line and its bash completion
#   mailstore             mailstored, mailstore-util and mailstored's unit
#
# `cpack -G DEB --config build/CPackConfig.cmake` builds them from a build
# folder; tests/packaging/package_test.sh checks them with lintian and runs
# the installed binaries with the installed example configurations.
include(GNUInstallDirs)

set(DAGVAULT_PACKAGING_DIR ${PROJECT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${DAGVAULT_PACKAGING_DIR})

# Per package: its copyright and compressed changelog, as Debian wants them.
execute_process(
  COMMAND gzip -9nc ${PROJECT_SOURCE_DIR}/deploy/debian/changelog
  OUTPUT_FILE ${DAGVAULT_PACKAGING_DIR}/changelog.Debian.gz)

function(dagvault_package_docs component package)
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/debian/copyright
                ${DAGVAULT_PACKAGING_DIR}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package} COMPONENT ${component})
  foreach(doc IN LISTS ARGN)
    install(FILES ${PROJECT_SOURCE_DIR}/${doc}
            DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package} COMPONENT ${component})
  endforeach()
endfunction()

# A unit from deploy/systemd with the packages' paths: binaries in
# /usr/bin, documentation in /usr/share/doc/PACKAGE.
function(dagvault_package_unit component package unit)
  file(READ ${PROJECT_SOURCE_DIR}/deploy/systemd/${unit} text)
  string(REPLACE "/usr/local/bin/" "/usr/bin/" text "${text}")
  string(REPLACE "file:///usr/local/share/doc/dagvault/" "file:///usr/share/doc/${package}/"
                 text "${text}")
  file(WRITE ${DAGVAULT_PACKAGING_DIR}/${unit} "${text}")
  install(FILES ${DAGVAULT_PACKAGING_DIR}/${unit} DESTINATION /lib/systemd/system
          COMPONENT ${component})
endfunction()

function(dagvault_package_examples component package)
  install(FILES ${ARGN} DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package}/examples
          COMPONENT ${component})
endfunction()

# dagvault-coordinator
install(TARGETS dagvault-coordinator RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT coordinator)
dagvault_package_unit(coordinator dagvault-coordinator dagvault-coordinator.service)
dagvault_package_examples(coordinator dagvault-coordinator
  ${PROJECT_SOURCE_DIR}/deploy/examples/coordinator.conf
  ${PROJECT_SOURCE_DIR}/deploy/monitoring/dagvault-alerts.yml
  ${PROJECT_SOURCE_DIR}/deploy/monitoring/prometheus.yml)
dagvault_package_docs(coordinator dagvault-coordinator
  docs/operator-guide.md docs/deployment.md docs/monitoring.md docs/console.md
  docs/security.md docs/architecture.md docs/guarantees.md docs/packages.md)

# dagvault-agent
install(TARGETS dagvault-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
dagvault_package_unit(agent dagvault-agent dagvault-agent.service)
dagvault_package_examples(agent dagvault-agent ${PROJECT_SOURCE_DIR}/deploy/examples/agent.conf)
dagvault_package_docs(agent dagvault-agent docs/operator-guide.md docs/deployment.md
  docs/packages.md)

# Bash completion, written by the binaries themselves from their command
# tables (`dagvault completion bash`).
foreach(tool dagvault dagvault-agent)
  add_custom_command(
    OUTPUT ${DAGVAULT_PACKAGING_DIR}/${tool}.bash-completion
    COMMAND $<TARGET_FILE:${tool}> completion bash > ${DAGVAULT_PACKAGING_DIR}/${tool}.bash-completion
    DEPENDS ${tool}
    COMMENT "bash completion for ${tool}")
endforeach()
add_custom_target(bash_completions ALL
  DEPENDS ${DAGVAULT_PACKAGING_DIR}/dagvault.bash-completion
          ${DAGVAULT_PACKAGING_DIR}/dagvault-agent.bash-completion)
install(FILES ${DAGVAULT_PACKAGING_DIR}/dagvault-agent.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions
        RENAME dagvault-agent COMPONENT agent)

# dagvault-cli
install(TARGETS dagvault RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)
install(FILES ${DAGVAULT_PACKAGING_DIR}/dagvault.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions
        RENAME dagvault COMPONENT cli)
dagvault_package_docs(cli dagvault-cli docs/deployment.md docs/repository.md docs/security.md
  docs/console.md)

# mailstore
install(TARGETS mailstored mailstore-util RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        COMPONENT mailstore)
dagvault_package_unit(mailstore mailstore mailstored.service)
dagvault_package_examples(mailstore mailstore ${PROJECT_SOURCE_DIR}/deploy/examples/mailstored.conf)
dagvault_package_docs(mailstore mailstore docs/mailstored.md docs/mailstore.md
  docs/mailstore-util.md docs/formats.md)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dagvault)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "dagvault developers <dagvault@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL coordinator agent cli mailstore)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/dagvault")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)

set(CPACK_DEBIAN_COORDINATOR_PACKAGE_NAME dagvault-coordinator)
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_DEPENDS adduser)
set(CPACK_COMPONENT_COORDINATOR_DESCRIPTION
    "backup coordinator for replicated mailbox databases
The dagvault coordinator: one per deployment. It keeps the topology the
agents report, runs backup policies and RPOs, chooses a healthy passive
copy to back up from, holds the one backup per database, assembles chains
across servers and orchestrates restores of every copy. It serves the
admin API, Prometheus metrics and the web console.")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME dagvault-agent)
set(CPACK_COMPONENT_AGENT_DESCRIPTION
    "dagvault node agent for mailbox servers
The dagvault agent runs on every mailbox node: it drives the mail server's
writers and snapshots, streams verified backups into the repository, and
restores from it, as the coordinator assigns.")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME dagvault-cli)
set(CPACK_COMPONENT_CLI_DESCRIPTION
    "dagvault command line for operators
The dagvault command: status and RPO, backups, restores, chains, jobs,
policies, the audit log, certificates and the backup repository.")

set(CPACK_DEBIAN_MAILSTORE_PACKAGE_NAME mailstore)
set(CPACK_COMPONENT_MAILSTORE_DESCRIPTION
    "ESE-style mailbox store with log-shipping replication
mailstored serves mailbox databases with write-ahead logs, replicates them
to passive copies on other servers and speaks the VSS-style writer protocol
dagvault backs up through; mailstore-util is its eseutil.")

# Maintainer scripts: each package's must be named postinst, prerm, postrm,
# so each gets its own folder. Re-run when a source changes.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/deploy/debian/changelog
  ${PROJECT_SOURCE_DIR}/deploy/debian/coordinator.postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/units.postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/units.prerm
  ${PROJECT_SOURCE_DIR}/deploy/debian/units.postrm
  ${PROJECT_SOURCE_DIR}/deploy/systemd/dagvault-coordinator.service
  ${PROJECT_SOURCE_DIR}/deploy/systemd/dagvault-agent.service
  ${PROJECT_SOURCE_DIR}/deploy/systemd/mailstored.service)
function(dagvault_package_scripts component unit postinst)
  set(dir ${DAGVAULT_PACKAGING_DIR}/${component})
  file(MAKE_DIRECTORY ${dir})
  set(UNIT ${unit})
  configure_file(${postinst} ${dir}/postinst @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                  WORLD_READ WORLD_EXECUTE)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/units.prerm ${dir}/prerm @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                  WORLD_READ WORLD_EXECUTE)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/units.postrm ${dir}/postrm @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                  WORLD_READ WORLD_EXECUTE)
  string(TOUPPER ${component} upper)
  set(CPACK_DEBIAN_${upper}_PACKAGE_CONTROL_EXTRA "${dir}/postinst;${dir}/prerm;${dir}/postrm"
      PARENT_SCOPE)
endfunction()
dagvault_package_scripts(coordinator dagvault-coordinator.service
                         ${PROJECT_SOURCE_DIR}/deploy/debian/coordinator.postinst)
dagvault_package_scripts(agent dagvault-agent.service
                         ${PROJECT_SOURCE_DIR}/deploy/debian/units.postinst)
dagvault_package_scripts(mailstore mailstored.service
                         ${PROJECT_SOURCE_DIR}/deploy/debian/units.postinst)

include(CPack)
