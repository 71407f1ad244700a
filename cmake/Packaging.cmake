# Debian package of the plugin: run `cpack -G DEB` in the build folder.
#
# Included at the end of CMakeLists.txt, after the install() rules that put
# vsock.so in ${Wireshark_PLUGIN_INSTALL_DIR}/epan and the extcap
# vsockhybriddump in ${Wireshark_EXTCAP_INSTALL_DIR}. A plugin only loads into the
# Wireshark it was built against, so the package is built per Debian release and
# its Depends come from dpkg-shlibdeps: the libwireshark soname package the
# plugin links (libwireshark16 on bookworm, libwireshark18 on trixie,
# libwireshark19 on sid), never a hand-written name.

# A package installs system-wide; a personal-folder build has nothing to package.
if(VSOCK_INSTALL_PERSONAL)
    return()
endif()

set(CPACK_PACKAGE_NAME "wireshark-vsock")
set(CPACK_PACKAGE_VENDOR "wireshark-vsock")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "Replaces Wireshark's built-in vsock dissector: virtio-vsock header fields, \
expert info and payload hand-off. With a vsock configuration profile (colouring \
rules, columns, filter buttons, I/O graphs), vsock-stream-graph, a time-sequence \
graph of a stream's credit, and vsockhybriddump, an extcap that captures the \
hybrid vsock (Unix socket) traffic of Firecracker, cloud-hypervisor and \
vhost-device-vsock. Built for Wireshark ${Wireshark_MAJOR_VERSION}.${Wireshark_MINOR_VERSION}.")
if(NOT CPACK_PACKAGE_CONTACT)
    set(CPACK_PACKAGE_CONTACT "wireshark-vsock developers <root@localhost>")
endif()

# Debian revision names the Wireshark series, so the .deb files of the three
# releases do not overwrite each other: wireshark-vsock_0.1.0-1+ws4.4_amd64.deb.
set(CPACK_DEBIAN_PACKAGE_RELEASE "1+ws${Wireshark_MAJOR_VERSION}.${Wireshark_MINOR_VERSION}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The extcap (vsockhybriddump) is a Python 3 script; dpkg-shlibdeps adds the
# libwireshark package to this.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3")
set(CPACK_DEBIAN_PACKAGE_ENHANCES "tshark, wireshark")
# vsock-stream-graph draws with matplotlib; the plugin and the profile need nothing more.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-matplotlib")
set(CPACK_STRIP_FILES ON)
# The install rules use Wireshark's absolute plugin and extcap folders; the
# DEB generator stages them under DESTDIR, so nothing is written outside the build folder.
set(CPACK_GENERATOR "DEB")

include(CPack)
