/* plugin.c
 * Entry points through which Wireshark loads the vsock plugin.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define WS_BUILD_DLL
#include <wireshark.h>
#include <epan/packet.h>
#include <epan/proto.h>

#include "vsock-compat.h"

#ifndef VSOCK_PLUGIN_VERSION
#error "VSOCK_PLUGIN_VERSION must come from the build system"
#endif

void proto_register_vsock_plugin(void);
void proto_reg_handoff_vsock_plugin(void);
void proto_register_ttrpc(void);
void proto_reg_handoff_ttrpc(void);
void proto_register_gvtap(void);
void proto_reg_handoff_gvtap(void);

WS_DLL_PUBLIC_DEF const char plugin_version[] = VSOCK_PLUGIN_VERSION;
WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;

WS_DLL_PUBLIC void plugin_register(void);

VSOCK_DEFINE_PLUGIN_DESCRIBE(WS_PLUGIN_DESC_DISSECTOR)

void plugin_register(void)
{
    static proto_plugin plug_vsock;
    static proto_plugin plug_ttrpc;
    static proto_plugin plug_gvtap;

    plug_vsock.register_protoinfo = proto_register_vsock_plugin;
    plug_vsock.register_handoff = proto_reg_handoff_vsock_plugin;
    proto_register_plugin(&plug_vsock);

    /* Kata Containers' agent protocol, carried over vsock port 1024. */
    plug_ttrpc.register_protoinfo = proto_register_ttrpc;
    plug_ttrpc.register_handoff = proto_reg_handoff_ttrpc;
    proto_register_plugin(&plug_ttrpc);

    /* gvisor-tap-vsock's network tunnel (Podman machine, CRC). */
    plug_gvtap.register_protoinfo = proto_register_gvtap;
    plug_gvtap.register_handoff = proto_reg_handoff_gvtap;
    proto_register_plugin(&plug_gvtap);
}
