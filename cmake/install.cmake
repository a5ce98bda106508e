# Install rules: the two programs, libcbevents (static and shared) with its
# headers, a pkg-config file and a CMake package, the example config, the
# systemd unit and the man pages. Included last from the top CMakeLists.txt,
# when every target exists.
include(CMakePackageConfigHelpers)

set(CBEV_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed, relative to the prefix")
set(CBEV_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/cbevents)

install(TARGETS cbevents-tail RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The bridge's main.c may not exist in every checkout stage.
if(TARGET cb2mqtt)
  install(TARGETS cb2mqtt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(TARGETS cbevents cbevents_shared EXPORT cbeventsTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          NAMELINK_COMPONENT Development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/cbevents
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/cbevents/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cbevents)

# CMake package: cbevents::cbevents (shared) and cbevents::cbevents_static.
install(EXPORT cbeventsTargets NAMESPACE cbevents::
  FILE cbeventsTargets.cmake DESTINATION ${CBEV_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/cbeventsConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cbeventsConfig.cmake INSTALL_DESTINATION ${CBEV_CMAKEDIR})
# The SONAME carries the major version, so the package promises the same.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cbeventsConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cbeventsConfig.cmake
              ${PROJECT_BINARY_DIR}/cbeventsConfigVersion.cmake
  DESTINATION ${CBEV_CMAKEDIR})

# pkg-config. With a relative libdir the file finds the prefix from its own
# place (${pcfiledir}), so `cmake --install --prefix` and DESTDIR trees work.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CBEV_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH CBEV_PC_UP "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" CBEV_PC_UP "${CBEV_PC_UP}")
  set(CBEV_PC_PREFIX "\${pcfiledir}/${CBEV_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CBEV_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CBEV_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/cbevents.pc.in
  ${PROJECT_BINARY_DIR}/cbevents.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cbevents.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The example config is documentation: the bridge reads
# /etc/cb2mqtt/cb2mqtt.ini, which the administrator writes from it.
if(EXISTS ${PROJECT_SOURCE_DIR}/config/cb2mqtt.ini)
  install(FILES ${PROJECT_SOURCE_DIR}/config/cb2mqtt.ini
    DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
endif()

# The unit names /usr/bin/cb2mqtt. It is installed pointing at the bindir
# of the prefix given at install time (`cmake --install --prefix` too), so
# that it runs the program installed beside it.
set(CBEV_UNIT_SRC ${PROJECT_SOURCE_DIR}/config/cb2mqtt.service)
set(CBEV_UNIT_OUT ${PROJECT_BINARY_DIR}/cb2mqtt.service.install)
install(CODE "
  set(_bindir \"${CMAKE_INSTALL_BINDIR}\")
  if(NOT IS_ABSOLUTE \"\${_bindir}\")
    set(_bindir \"\${CMAKE_INSTALL_PREFIX}/\${_bindir}\")
  endif()
  file(READ \"${CBEV_UNIT_SRC}\" _unit)
  string(REPLACE \"ExecStart=/usr/bin/cb2mqtt\" \"ExecStart=\${_bindir}/cb2mqtt\"
         _unit \"\${_unit}\")
  file(WRITE \"${CBEV_UNIT_OUT}\" \"\${_unit}\")
")
install(FILES ${CBEV_UNIT_OUT} RENAME cb2mqtt.service
  DESTINATION ${CBEV_SYSTEMD_UNITDIR})

install(FILES ${PROJECT_SOURCE_DIR}/doc/cb2mqtt.1
              ${PROJECT_SOURCE_DIR}/doc/cbevents-tail.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
