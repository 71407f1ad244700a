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
void proto_register_nitro(void);
void proto_reg_handoff_nitro(void);
void proto_register_sd_notify(void);
void proto_reg_handoff_sd_notify(void);
void proto_register_qga(void);
void proto_reg_handoff_qga(void);
void proto_register_kata(void);
void proto_reg_handoff_kata(void);
void proto_register_gvtap(void);
void proto_reg_handoff_gvtap(void);

WS_DLL_PUBLIC_DEF const char plugin_version[] = VSOCK_PLUGIN_VERSION;
WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;

WS_DLL_PUBLIC void plugin_register(void);

VSOCK_DEFINE_PLUGIN_DESCRIBE(WS_PLUGIN_DESC_DISSECTOR)

void plugin_register(void)
{
    /* The vsock dissector, then the protocols it carries. Plugin handoffs run
     * in reverse order, and a heuristic added later is asked first. */
    static proto_plugin plugins[] = {
        { .register_protoinfo = proto_register_vsock_plugin, .register_handoff = proto_reg_handoff_vsock_plugin },
        /* Kata Containers' agent protocol, over vsock port 1024 */
        { .register_protoinfo = proto_register_ttrpc, .register_handoff = proto_reg_handoff_ttrpc },
        { .register_protoinfo = proto_register_nitro, .register_handoff = proto_reg_handoff_nitro },
        { .register_protoinfo = proto_register_sd_notify, .register_handoff = proto_reg_handoff_sd_notify },
        { .register_protoinfo = proto_register_qga, .register_handoff = proto_reg_handoff_qga },
        { .register_protoinfo = proto_register_kata, .register_handoff = proto_reg_handoff_kata },
        /* gvisor-tap-vsock's network tunnel (Podman machine, CRC) */
        { .register_protoinfo = proto_register_gvtap, .register_handoff = proto_reg_handoff_gvtap },
    };

    for (size_t i = 0; i < array_length(plugins); i++)
        proto_register_plugin(&plugins[i]);
}
