/* packet-nitro.c
 * AWS Nitro Enclaves over vsock, seen on the parent instance (CID 3):
 * - the boot heartbeat: the enclave's init connects to the parent's port 9000,
 *   writes one byte 0xB7 and waits for it to come back
 *   (aws-nitro-enclaves-sdk-bootstrap init/init.c, enclave_ready());
 * - the console of a debug-mode enclave: nitro-cli connects to the hypervisor
 *   (CID 0) on port 10000 + the enclave's CID and reads its serial output
 *   (aws-nitro-enclaves-cli src/lib.rs, CID_TO_CONSOLE_PORT_OFFSET);
 * - vsock-proxy on the parent's port 8000 relays the enclave's TLS to AWS KMS
 *   (aws-nitro-enclaves-cli vsock_proxy/README.md): named here, the TLS inside
 *   goes to Wireshark's TLS dissector.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/address_types.h>
#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/proto_data.h>

#include "vsock-compat.h"
#include "packet-vsock-payload.h"
#include "packet-vsock-text.h"

#define NITRO_HEARTBEAT_PORT        9000
#define NITRO_HEARTBEAT             0xB7
#define NITRO_PROXY_PORT            8000
#define NITRO_CONSOLE_PORT_OFFSET   10000
#define NITRO_CID_HYPERVISOR        0
#define NITRO_FIRST_ENCLAVE_CID     4   /* 0-3 are reserved; the parent is 3 */

void proto_register_nitro(void);
void proto_reg_handoff_nitro(void);

static int proto_nitro = -1;
/* One name per service, for Decode As (-d vsock.port==N,nitro.console). */
static int proto_nitro_heartbeat = -1;
static int proto_nitro_console = -1;
static int proto_nitro_proxy = -1;

static int hf_nitro_service = -1;
static int hf_nitro_heartbeat = -1;
static int hf_nitro_heartbeat_extra = -1;
static int hf_nitro_response_in = -1;
static int hf_nitro_response_to = -1;
static int hf_nitro_time = -1;
static int hf_nitro_enclave_cid = -1;
static int hf_nitro_console_line = -1;

static int ett_nitro = -1;

static expert_field ei_nitro_heartbeat_bad = EI_INIT;
static expert_field ei_nitro_heartbeat_length = EI_INIT;
static expert_field ei_nitro_heartbeat_empty = EI_INIT;

static dissector_handle_t heartbeat_handle;
static dissector_handle_t console_handle;
static dissector_handle_t proxy_handle;
static dissector_handle_t tls_handle;

static int vsock_cid_type = -1;

/* Per connection: the heartbeat and its echo (wmem_file_scope). */
typedef struct nitro_heartbeat_conv {
    uint32_t heartbeat_frame;
    uint32_t echo_frame;
    nstime_t heartbeat_time;
} nitro_heartbeat_conv_t;

/* The port this dissector was called for: the table entry's (Decode As
 * included), else the parent's well-known one. */
static uint32_t matched_port(packet_info *pinfo, uint32_t well_known)
{
    return pinfo->match_uint ? pinfo->match_uint : well_known;
}

static proto_tree *add_nitro_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const char *service,
                                  proto_item **item)
{
    proto_item *ti = proto_tree_add_item(tree, proto_nitro, tvb, 0, -1, ENC_NA);
    proto_tree *nitro_tree = proto_item_add_subtree(ti, ett_nitro);
    proto_item *service_item = proto_tree_add_string(nitro_tree, hf_nitro_service, tvb, 0, 0, service);

    proto_item_set_generated(service_item);
    proto_item_append_text(ti, ", %s", service);
    col_set_str(pinfo->cinfo, COL_PROTOCOL, "Nitro");
    if (item)
        *item = ti;
    return nitro_tree;
}

/* ---- boot heartbeat ---- */

static nitro_heartbeat_conv_t *get_heartbeat_conv(packet_info *pinfo)
{
    conversation_t *conv = find_or_create_conversation(pinfo);
    nitro_heartbeat_conv_t *hconv = (nitro_heartbeat_conv_t *)conversation_get_proto_data(conv, proto_nitro);

    if (!hconv) {
        hconv = wmem_new0(wmem_file_scope(), nitro_heartbeat_conv_t);
        conversation_add_proto_data(conv, proto_nitro, hconv);
    }
    return hconv;
}

static void add_heartbeat_links(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, bool is_echo)
{
    nitro_heartbeat_conv_t *hconv = get_heartbeat_conv(pinfo);
    proto_item *ti;
    nstime_t delta;

    if (!PINFO_FD_VISITED(pinfo)) {
        if (!is_echo && !hconv->heartbeat_frame) {
            hconv->heartbeat_frame = pinfo->num;
            hconv->heartbeat_time = pinfo->abs_ts;
        } else if (is_echo && hconv->heartbeat_frame && !hconv->echo_frame) {
            hconv->echo_frame = pinfo->num;
        }
    }
    if (!is_echo && hconv->heartbeat_frame == pinfo->num && hconv->echo_frame) {
        ti = proto_tree_add_uint(tree, hf_nitro_response_in, tvb, 0, 0, hconv->echo_frame);
        proto_item_set_generated(ti);
    } else if (is_echo && hconv->echo_frame == pinfo->num) {
        ti = proto_tree_add_uint(tree, hf_nitro_response_to, tvb, 0, 0, hconv->heartbeat_frame);
        proto_item_set_generated(ti);
        nstime_delta(&delta, &pinfo->abs_ts, &hconv->heartbeat_time);
        ti = proto_tree_add_time(tree, hf_nitro_time, tvb, 0, 0, &delta);
        proto_item_set_generated(ti);
    }
}

/* The enclave sends the byte to the parent's port; the parent echoes it. */
static int dissect_heartbeat(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    const bool is_echo = pinfo->srcport == matched_port(pinfo, NITRO_HEARTBEAT_PORT) &&
                         pinfo->destport != pinfo->srcport;
    const char *what = is_echo ? "Heartbeat echo" : "Heartbeat";
    proto_item *nitro_item, *ti;
    proto_tree *nitro_tree;
    uint32_t value;

    nitro_tree = add_nitro_tree(tvb, pinfo, tree, "Boot heartbeat", &nitro_item);
    if (length == 0) {
        expert_add_info(pinfo, nitro_item, &ei_nitro_heartbeat_empty);
        col_add_fstr(pinfo->cinfo, COL_INFO, "%s, empty", what);
        return 0;
    }
    ti = proto_tree_add_item_ret_uint(nitro_tree, hf_nitro_heartbeat, tvb, 0, 1, ENC_NA, &value);
    if (value != NITRO_HEARTBEAT)
        expert_add_info_format(pinfo, ti, &ei_nitro_heartbeat_bad, "Heartbeat byte 0x%02x, expected 0x%02x",
                               value, NITRO_HEARTBEAT);
    if (length > 1) {
        ti = proto_tree_add_item(nitro_tree, hf_nitro_heartbeat_extra, tvb, 1, length - 1, ENC_NA);
        expert_add_info_format(pinfo, ti, &ei_nitro_heartbeat_length, "%d bytes after the heartbeat byte",
                               length - 1);
    }
    add_heartbeat_links(tvb, pinfo, nitro_tree, is_echo);
    col_add_fstr(pinfo->cinfo, COL_INFO, "%s 0x%02x%s%s", what, value,
                 value == NITRO_HEARTBEAT ? (is_echo ? "" : " (enclave booted)") : " (wrong value)",
                 length > 1 ? " [extra bytes]" : "");
    return length;
}

/* ---- console ---- */

static bool address_is_cid(const address *addr, uint64_t cid)
{
    return addr->type == vsock_cid_type && addr->len == 8 && pletohu64(addr->data) == cid;
}

/* The enclave CID a console port stands for; 0 if it is not one. */
static uint32_t console_enclave_cid(uint32_t port)
{
    if (port < NITRO_CONSOLE_PORT_OFFSET + NITRO_FIRST_ENCLAVE_CID)
        return 0;
    return port - NITRO_CONSOLE_PORT_OFFSET;
}

/* The console port: the hypervisor's end of the connection. */
static uint32_t console_port(packet_info *pinfo)
{
    if (address_is_cid(&pinfo->src, NITRO_CID_HYPERVISOR))
        return pinfo->srcport;
    if (address_is_cid(&pinfo->dst, NITRO_CID_HYPERVISOR))
        return pinfo->destport;
    return matched_port(pinfo, 0);
}

static int dissect_console(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    const uint32_t enclave_cid = console_enclave_cid(console_port(pinfo));
    proto_tree *nitro_tree = add_nitro_tree(tvb, pinfo, tree, "Enclave console", NULL);
    const bool output = pinfo->srcport == console_port(pinfo);
    const char *first;
    unsigned n_lines;
    proto_item *ti;

    if (enclave_cid) {
        ti = proto_tree_add_uint(nitro_tree, hf_nitro_enclave_cid, tvb, 0, 0, enclave_cid);
        proto_item_set_generated(ti);
    }
    n_lines = vsock_add_text_lines(tvb, pinfo, nitro_tree, hf_nitro_console_line, 0, length, &first);
    if (enclave_cid)
        col_add_fstr(pinfo->cinfo, COL_INFO, "Console of enclave %u%s: %s", enclave_cid, output ? "" : " (input)",
                     vsock_lines_summary(pinfo, first, n_lines));
    else
        col_add_fstr(pinfo->cinfo, COL_INFO, "Enclave console%s: %s", output ? "" : " (input)",
                     vsock_lines_summary(pinfo, first, n_lines));
    return length;
}

/* Connections to the hypervisor (CID 0) on port 10000 + an enclave CID. */
static vsock_cb_bool dissect_console_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    const bool to_hypervisor = address_is_cid(&pinfo->dst, NITRO_CID_HYPERVISOR);
    const bool from_hypervisor = address_is_cid(&pinfo->src, NITRO_CID_HYPERVISOR);

    if (to_hypervisor == from_hypervisor)
        return false;
    if (!console_enclave_cid(from_hypervisor ? pinfo->srcport : pinfo->destport))
        return false;
    vsock_set_connection_dissector(pinfo, console_handle);
    dissect_console(tvb, pinfo, tree, data);
    return true;
}

/* ---- vsock-proxy ---- */

static int dissect_proxy(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    add_nitro_tree(tvb, pinfo, tree, "vsock-proxy", NULL);
    col_set_str(pinfo->cinfo, COL_INFO, "vsock-proxy");
    col_set_fence(pinfo->cinfo, COL_INFO);
    if (tls_handle)
        return call_dissector(tls_handle, tvb, pinfo, tree);
    return (int)tvb_captured_length(tvb);
}

void proto_register_nitro(void)
{
    static hf_register_info hf[] = {
        { &hf_nitro_service,
          { "Service", "nitro.service", FT_STRING, BASE_NONE, NULL, 0x0,
            "Boot heartbeat, enclave console or vsock-proxy", HFILL } },
        { &hf_nitro_heartbeat,
          { "Heartbeat", "nitro.heartbeat.value", FT_UINT8, BASE_HEX, NULL, 0x0,
            "0xB7: the enclave has booted (echoed back by the parent)", HFILL } },
        { &hf_nitro_heartbeat_extra,
          { "Extra bytes", "nitro.heartbeat.extra", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_nitro_response_in,
          { "Echo in", "nitro.response_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
            "The parent echoed this heartbeat in this frame", HFILL } },
        { &hf_nitro_response_to,
          { "Heartbeat in", "nitro.response_to", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
            "This echoes the heartbeat in this frame", HFILL } },
        { &hf_nitro_time,
          { "Time since heartbeat", "nitro.time", FT_RELATIVE_TIME, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_nitro_enclave_cid,
          { "Enclave CID", "nitro.enclave_cid", FT_UINT32, BASE_DEC, NULL, 0x0,
            "The console port less 10000", HFILL } },
        { &hf_nitro_console_line,
          { "Console line", "nitro.console.line", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_nitro,
    };
    static ei_register_info ei[] = {
        { &ei_nitro_heartbeat_bad,
          { "nitro.heartbeat.bad", PI_PROTOCOL, PI_WARN, "Heartbeat byte is not 0xB7", EXPFILL } },
        { &ei_nitro_heartbeat_length,
          { "nitro.heartbeat.length", PI_PROTOCOL, PI_WARN, "Bytes after the heartbeat byte", EXPFILL } },
        { &ei_nitro_heartbeat_empty,
          { "nitro.heartbeat.empty", PI_MALFORMED, PI_ERROR, "No heartbeat byte", EXPFILL } },
    };
    expert_module_t *expert_nitro;

    proto_nitro = proto_register_protocol("AWS Nitro Enclaves", "Nitro", "nitro");
    proto_register_field_array(proto_nitro, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_nitro = expert_register_protocol(proto_nitro);
    expert_register_field_array(expert_nitro, ei, array_length(ei));

    proto_nitro_heartbeat = proto_register_protocol_in_name_only("AWS Nitro Enclaves boot heartbeat",
                                                                 "Nitro heartbeat", "nitro.heartbeat", proto_nitro,
                                                                 FT_PROTOCOL);
    proto_nitro_console = proto_register_protocol_in_name_only("AWS Nitro Enclaves console", "Nitro console",
                                                               "nitro.console", proto_nitro, FT_PROTOCOL);
    proto_nitro_proxy = proto_register_protocol_in_name_only("AWS Nitro Enclaves vsock-proxy", "Nitro vsock-proxy",
                                                             "nitro.vsock_proxy", proto_nitro, FT_PROTOCOL);
    heartbeat_handle = register_dissector("nitro_heartbeat", dissect_heartbeat, proto_nitro_heartbeat);
    console_handle = register_dissector("nitro_console", dissect_console, proto_nitro_console);
    proxy_handle = register_dissector("nitro_vsock_proxy", dissect_proxy, proto_nitro_proxy);
}

void proto_reg_handoff_nitro(void)
{
    vsock_cid_type = address_type_get_by_name("AT_VSOCK_CID");

    /* Well-known ports of the parent; Decode As changes them. */
    dissector_add_uint("vsock.port", NITRO_HEARTBEAT_PORT, heartbeat_handle);
    dissector_add_uint("vsock.port", NITRO_PROXY_PORT, proxy_handle);
    dissector_add_for_decode_as("vsock.port", heartbeat_handle);
    dissector_add_for_decode_as("vsock.port", proxy_handle);
    dissector_add_for_decode_as("vsock.port", console_handle);
    /* TLS would take vsock-proxy's connections before the port table. */
    vsock_prefer_port_dissector(proxy_handle);

    /* The console port depends on the enclave's CID. */
    heur_dissector_add("vsock", dissect_console_heur, "AWS Nitro Enclaves console over vsock", "nitro_console_vsock",
                       proto_nitro, HEURISTIC_ENABLE);
    tls_handle = find_dissector_add_dependency("tls", proto_nitro);
}
