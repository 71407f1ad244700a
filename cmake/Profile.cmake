# The "vsock" configuration profile and the stream graph tool.
#
# Included from CMakeLists.txt. The profile is assembled in the build folder
# (build/profiles/vsock), where the tests and tools/gui-check.py take it from,
# and installed as a global profile: Wireshark 4.0, 4.4 and 4.6 all list the
# folders under "<data dir>/profiles" in the status bar's profile switcher, and
# `tshark -C vsock` copies a global profile into the personal folder on first
# use. The data dir is where Wireshark keeps its default colorfilters
# (get_datafile_dir(); `tshark -G folders` calls it "Global configuration"):
# share/wireshark under Wireshark's prefix. Its CMake config has no variable
# for it, hence the cache entry.

set(VSOCK_WIRESHARK_DATA_DIR "${Wireshark_INSTALL_PREFIX}/share/wireshark" CACHE PATH
    "Wireshark's data folder (tshark -G folders: Global configuration)")
set(VSOCK_PROFILE_SOURCE "${CMAKE_CURRENT_SOURCE_DIR}/profiles")
set(VSOCK_PROFILE_BUILD "${CMAKE_CURRENT_BINARY_DIR}/profiles/vsock")

foreach(name preferences dfilter_buttons io_graphs)
    configure_file("${VSOCK_PROFILE_SOURCE}/vsock/${name}" "${VSOCK_PROFILE_BUILD}/${name}" COPYONLY)
endforeach()

# colorfilters: a profile's list replaces Wireshark's default list, so the
# profile's is the vsock rules with this Wireshark's own defaults put where
# vsock-colorfilters says: after vsock's problem and connect/shutdown rules,
# before its catch-all payload and control rules. An HTTP payload then keeps
# Wireshark's HTTP colour; a credit stall is marked even on an HTTP packet.
set(vsock_rules_file "${VSOCK_PROFILE_SOURCE}/vsock-colorfilters")
set(ws_rules_file "${VSOCK_WIRESHARK_DATA_DIR}/colorfilters")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${vsock_rules_file}")
file(READ "${vsock_rules_file}" vsock_rules)
set(marker "# The vsock profile puts Wireshark's default rules here")
string(FIND "${vsock_rules}" "${marker}" split)
if(split EQUAL -1)
    message(FATAL_ERROR "${vsock_rules_file}: the line \"${marker}...\" is missing")
endif()
string(SUBSTRING "${vsock_rules}" 0 ${split} vsock_first)
string(SUBSTRING "${vsock_rules}" ${split} -1 vsock_last)
# Comments are for readers of vsock-colorfilters; the rules remain.
foreach(part vsock_first vsock_last)
    string(REGEX REPLACE "(^|\n)#[^\n]*" "" ${part} "${${part}}")
    string(REGEX REPLACE "^\n+" "" ${part} "${${part}}")
endforeach()
if(EXISTS "${ws_rules_file}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${ws_rules_file}")
    file(READ "${ws_rules_file}" ws_rules)
    # Its "created by Wireshark" comment line would be wrong here.
    string(REGEX REPLACE "(^|\n)#[^\n]*" "" ws_rules "${ws_rules}")
    string(REGEX REPLACE "^\n+" "" ws_rules "${ws_rules}")
else()
    message(WARNING "${ws_rules_file} not found: the vsock profile gets the vsock colouring rules only "
                    "(set VSOCK_WIRESHARK_DATA_DIR to Wireshark's data folder)")
    set(ws_rules "")
endif()
file(WRITE "${VSOCK_PROFILE_BUILD}/colorfilters.tmp"
     "# Configuration profile \"vsock\" (wireshark-vsock): the vsock colouring rules\n"
     "# of profiles/vsock-colorfilters around Wireshark ${Wireshark_VERSION}'s default rules.\n"
     "${vsock_first}${ws_rules}${vsock_last}")
configure_file("${VSOCK_PROFILE_BUILD}/colorfilters.tmp" "${VSOCK_PROFILE_BUILD}/colorfilters" COPYONLY)
file(REMOVE "${VSOCK_PROFILE_BUILD}/colorfilters.tmp")

include(GNUInstallDirs)
if(VSOCK_INSTALL_PERSONAL)
    # Wireshark's personal folder: ~/.wireshark if it exists, else the XDG one.
    if(EXISTS "$ENV{HOME}/.wireshark")
        set(VSOCK_PROFILE_INSTALL_DIR "$ENV{HOME}/.wireshark/profiles")
    elseif(DEFINED ENV{XDG_CONFIG_HOME})
        set(VSOCK_PROFILE_INSTALL_DIR "$ENV{XDG_CONFIG_HOME}/wireshark/profiles")
    else()
        set(VSOCK_PROFILE_INSTALL_DIR "$ENV{HOME}/.config/wireshark/profiles")
    endif()
    set(VSOCK_TOOL_INSTALL_DIR "$ENV{HOME}/.local/bin")
else()
    set(VSOCK_PROFILE_INSTALL_DIR "${VSOCK_WIRESHARK_DATA_DIR}/profiles")
    set(VSOCK_TOOL_INSTALL_DIR "${CMAKE_INSTALL_BINDIR}")
endif()
install(FILES "${VSOCK_PROFILE_BUILD}/colorfilters" "${VSOCK_PROFILE_BUILD}/preferences"
              "${VSOCK_PROFILE_BUILD}/dfilter_buttons" "${VSOCK_PROFILE_BUILD}/io_graphs"
        DESTINATION "${VSOCK_PROFILE_INSTALL_DIR}/vsock")
# The rules alone, for View > Coloring Rules > Import in a profile of one's own.
install(FILES "${vsock_rules_file}" DESTINATION "${CMAKE_INSTALL_DOCDIR}")
install(PROGRAMS "${CMAKE_CURRENT_SOURCE_DIR}/tools/vsock-stream-graph" DESTINATION "${VSOCK_TOOL_INSTALL_DIR}")
