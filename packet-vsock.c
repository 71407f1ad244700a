/* packet-vsock.c
 * Linux AF_VSOCK as captured by the vsockmon device (LINKTYPE_VSOCK, 271):
 * a 32-byte vsockmon header, a transport header (virtio: 44 bytes), payload.
 *
 * This plugin adopts the built-in "vsock" protocol entry (its field names keep
 * working), registers the full set of fields and expert info under it, and
 * replaces the built-in dissector on WTAP_ENCAP_VSOCK in its handoff.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/address_types.h>
#include <epan/to_str.h>
#include <epan/expert.h>
#include <epan/prefs.h>
#include <wiretap/wtap.h>
#include <wsutil/pint.h>
#include <wsutil/utf8_entities.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-analysis.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-payload.h"
#include "packet-vsock-reassembly.h"
#include "packet-vsock-taps.h"

void proto_register_vsock_plugin(void);
void proto_reg_handoff_vsock_plugin(void);

/* vsockmon header */
const value_string vsockmon_op_vals[] = {
    { VSOCKMON_OP_UNKNOWN,    "Unknown" },
    { VSOCKMON_OP_CONNECT,    "Connect" },
    { VSOCKMON_OP_DISCONNECT, "Disconnect" },
    { VSOCKMON_OP_CONTROL,    "Control" },
    { VSOCKMON_OP_PAYLOAD,    "Payload" },
    { 0, NULL }
};

static const value_string vsockmon_transport_vals[] = {
    { VSOCKMON_TRANSPORT_UNKNOWN, "Unknown" },
    { VSOCKMON_TRANSPORT_NO_INFO, "No info" },
    { VSOCKMON_TRANSPORT_VIRTIO,  "Virtio" },
    { 0, NULL }
};

static const val64_string vsock_cid_vals[] = {
    { VMADDR_CID_HYPERVISOR, "hypervisor" },
    { VMADDR_CID_LOCAL,      "local" },
    { VMADDR_CID_HOST,       "host" },
    { VMADDR_CID_ANY,        "any" },
    { 0, NULL }
};

/* virtio transport header */
static const value_string virtio_type_vals[] = {
    { VIRTIO_VSOCK_TYPE_STREAM,    "Stream" },
    { VIRTIO_VSOCK_TYPE_SEQPACKET, "Seqpacket" },
    { VIRTIO_VSOCK_TYPE_DGRAM,     "Dgram (proposed)" },
    { 0, NULL }
};

static const value_string virtio_op_vals[] = {
    { VIRTIO_VSOCK_OP_INVALID,        "Invalid" },
    { VIRTIO_VSOCK_OP_REQUEST,        "Request" },
    { VIRTIO_VSOCK_OP_RESPONSE,       "Response" },
    { VIRTIO_VSOCK_OP_RST,            "Rst" },
    { VIRTIO_VSOCK_OP_SHUTDOWN,       "Shutdown" },
    { VIRTIO_VSOCK_OP_RW,             "RW" },
    { VIRTIO_VSOCK_OP_CREDIT_UPDATE,  "Credit update" },
    { VIRTIO_VSOCK_OP_CREDIT_REQUEST, "Credit request" },
    { 0, NULL }
};

/* Short socket type names: the Info column, statistics. */
const value_string virtio_type_short_vals[] = {
    { VIRTIO_VSOCK_TYPE_STREAM,    "stream" },
    { VIRTIO_VSOCK_TYPE_SEQPACKET, "seqpacket" },
    { VIRTIO_VSOCK_TYPE_DGRAM,     "dgram" },
    { 0, NULL }
};

/* Short op names: the Info column in the style of TCP's [SYN], statistics. */
const value_string virtio_op_short_vals[] = {
    { VIRTIO_VSOCK_OP_INVALID,        "INVALID" },
    { VIRTIO_VSOCK_OP_REQUEST,        "REQUEST" },
    { VIRTIO_VSOCK_OP_RESPONSE,       "RESPONSE" },
    { VIRTIO_VSOCK_OP_RST,            "RST" },
    { VIRTIO_VSOCK_OP_SHUTDOWN,       "SHUTDOWN" },
    { VIRTIO_VSOCK_OP_RW,             "RW" },
    { VIRTIO_VSOCK_OP_CREDIT_UPDATE,  "CREDIT_UPDATE" },
    { VIRTIO_VSOCK_OP_CREDIT_REQUEST, "CREDIT_REQUEST" },
    { 0, NULL }
};

static int proto_vsock = -1;
static int vsock_address_type = -1;
static dissector_handle_t vsock_handle;

static int hf_vsock_src_cid = -1;
static int hf_vsock_dst_cid = -1;
static int hf_vsock_src_port = -1;
static int hf_vsock_dst_port = -1;
static int hf_vsock_cid = -1;
static int hf_vsock_port = -1;
static int hf_vsock_op = -1;
static int hf_vsock_trans = -1;
static int hf_vsock_trans_len = -1;
static int hf_vsock_reserved = -1;
static int hf_vsock_trans_hdr = -1;
static int hf_vsock_payload = -1;
static int hf_vsock_payload_excess = -1;
static int hf_vsock_len = -1;

static int hf_vsock_virtio_src_cid = -1;
static int hf_vsock_virtio_dst_cid = -1;
static int hf_vsock_virtio_src_port = -1;
static int hf_vsock_virtio_dst_port = -1;
static int hf_vsock_virtio_src_prot = -1;
static int hf_vsock_virtio_dst_prot = -1;
static int hf_vsock_virtio_len = -1;
static int hf_vsock_virtio_type = -1;
static int hf_vsock_virtio_op = -1;
static int hf_vsock_virtio_flags = -1;
static int hf_vsock_virtio_flags_shutdown_rcv = -1;
static int hf_vsock_virtio_flags_shutdown_send = -1;
static int hf_vsock_virtio_flags_seq_eom = -1;
static int hf_vsock_virtio_flags_seq_eor = -1;
static int hf_vsock_virtio_buf_alloc = -1;
static int hf_vsock_virtio_fwd_cnt = -1;

static int ett_vsock = -1;
static int ett_vsock_virtio = -1;
static int ett_vsock_virtio_flags = -1;

static expert_field ei_vsock_hdr_short = EI_INIT;
static expert_field ei_vsock_trans_len_past_end = EI_INIT;
static expert_field ei_vsock_trans_unknown = EI_INIT;
static expert_field ei_vsock_trans_hdr_skipped = EI_INIT;
static expert_field ei_vsock_op_unknown = EI_INIT;
static expert_field ei_vsock_op_mismatch = EI_INIT;
static expert_field ei_vsock_reserved_nonzero = EI_INIT;
static expert_field ei_vsock_cid_reserved_bits = EI_INIT;
static expert_field ei_vsock_cid_mismatch = EI_INIT;
static expert_field ei_vsock_port_mismatch = EI_INIT;
static expert_field ei_vsock_len_mismatch = EI_INIT;
static expert_field ei_vsock_payload_unexpected = EI_INIT;
static expert_field ei_vsock_virtio_hdr_len_bad = EI_INIT;
static expert_field ei_vsock_virtio_truncated = EI_INIT;
static expert_field ei_vsock_virtio_op_unknown = EI_INIT;
static expert_field ei_vsock_virtio_op_invalid = EI_INIT;
static expert_field ei_vsock_virtio_type_unknown = EI_INIT;
static expert_field ei_vsock_virtio_len_zero = EI_INIT;
static expert_field ei_vsock_virtio_flags_unknown = EI_INIT;
static expert_field ei_vsock_virtio_flags_shutdown_none = EI_INIT;

static int * const virtio_shutdown_flags[] = {
    &hf_vsock_virtio_flags_shutdown_rcv,
    &hf_vsock_virtio_flags_shutdown_send,
    NULL
};

static int * const virtio_seqpacket_flags[] = {
    &hf_vsock_virtio_flags_seq_eom,
    &hf_vsock_virtio_flags_seq_eor,
    NULL
};

/* CID fields: "host (2)" for the well-known CIDs, the number otherwise. */
static void format_cid(char *buf, uint64_t cid)
{
    const char *name = try_val64_to_str(cid, vsock_cid_vals);

    if (name)
        snprintf(buf, ITEM_LABEL_LENGTH, "%s (%" PRIu64 ")", name, cid);
    else
        snprintf(buf, ITEM_LABEL_LENGTH, "%" PRIu64, cid);
}

/* CID addresses are numbers, so that filters built from them work; the
 * columns add the names of the well-known CIDs: "host (2)". */
static int vsock_cid_to_str(const address *addr, char *buf, int buf_len)
{
    snprintf(buf, buf_len, "%" PRIu64, pletoh64(addr->data));
    return (int)strlen(buf) + 1;
}

/* The columns show the name of a well-known CID; for any other, NULL makes
 * them show the number (to_str). A static buffer for that number was shared
 * by the Source and Destination columns: both showed one CID. */
static const char *vsock_cid_name(const address *addr)
{
    return try_val64_to_str(pletoh64(addr->data), vsock_cid_vals);
}

static int vsock_cid_name_len(void)
{
    return 11; /* "hypervisor" */
}

static int vsock_cid_str_len(const address *addr _U_)
{
    return 21; /* 2^64 - 1 in decimal, and the terminator */
}

static const char *vsock_cid_col_filter(const address *addr _U_, vsock_cb_bool is_src)
{
    return is_src ? "vsock.src_cid" : "vsock.dst_cid";
}

static int vsock_cid_len(void)
{
    return 8;
}

/* The flag bits an operation defines: SHUTDOWN's directions and, on
 * seqpacket connections, RW's message boundaries; any other bit is
 * unexpected. With their fields and their text in the Info column. */
typedef struct virtio_flag_family {
    uint32_t defined;
    int * const *fields;
    const char *const *info_text;   /* by the value of the defined bits */
} virtio_flag_family_t;

static const virtio_flag_family_t *virtio_flag_family(const vsock_packet_info_t *packet)
{
    static const char *const shutdown_text[] = { "", " rcv", " send", " rcv,send" };
    static const char *const seqpacket_text[] = { "", " EOM", " EOR", " EOM,EOR" };
    static const virtio_flag_family_t shutdown = {
        VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, virtio_shutdown_flags, shutdown_text
    };
    static const virtio_flag_family_t seqpacket = {
        VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR, virtio_seqpacket_flags, seqpacket_text
    };

    if (packet->virtio_op == VIRTIO_VSOCK_OP_SHUTDOWN)
        return &shutdown;
    if (packet->virtio_op == VIRTIO_VSOCK_OP_RW && packet->type == VIRTIO_VSOCK_TYPE_SEQPACKET)
        return &seqpacket;
    return NULL;
}

/* The vsockmon op a healthy kernel writes for a virtio op. */
static uint32_t vsockmon_op_for_virtio_op(uint32_t virtio_op)
{
    switch (virtio_op) {
    case VIRTIO_VSOCK_OP_REQUEST:
    case VIRTIO_VSOCK_OP_RESPONSE:
        return VSOCKMON_OP_CONNECT;
    case VIRTIO_VSOCK_OP_RST:
    case VIRTIO_VSOCK_OP_SHUTDOWN:
        return VSOCKMON_OP_DISCONNECT;
    case VIRTIO_VSOCK_OP_RW:
        return VSOCKMON_OP_PAYLOAD;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        return VSOCKMON_OP_CONTROL;
    default:
        return VSOCKMON_OP_UNKNOWN;
    }
}

/* CIDs are 64-bit on the wire but 32-bit in AF_VSOCK; the upper half is reserved. */
static void check_cid_reserved_bits(packet_info *pinfo, proto_item *item, uint64_t cid)
{
    if (cid >> 32)
        expert_add_info_format(pinfo, item, &ei_vsock_cid_reserved_bits,
                               "Upper 32 bits of CID 0x%016" PRIx64 " are set (reserved, must be zero)",
                               cid);
}

/* A header field is added to a visible tree, and to one that only filters
 * or extracts fields (tshark -Y, -T fields) when it is asked for: Wireshark
 * would fake it after decoding it, which cost a sixth of a filter pass. Not
 * added, its value is read directly and its expert infos go to the parent,
 * where Wireshark's fake item of 4.0 sends them too. */
static proto_item *add_cid(proto_tree *tree, int hf, tvbuff_t *tvb, int offset,
                           packet_info *pinfo, uint64_t *cid)
{
    proto_item *item = tree;

    if (proto_field_is_referenced(tree, hf))
        item = proto_tree_add_item_ret_uint64(tree, hf, tvb, offset, 8, ENC_LITTLE_ENDIAN, cid);
    else
        *cid = tvb_get_letoh64(tvb, offset);
    check_cid_reserved_bits(pinfo, item, *cid);
    return item;
}

static proto_item *add_uint(proto_tree *tree, int hf, tvbuff_t *tvb, int offset, int length, uint32_t *value)
{
    if (proto_field_is_referenced(tree, hf))
        return proto_tree_add_item_ret_uint(tree, hf, tvb, offset, length, ENC_LITTLE_ENDIAN, value);
    *value = length == 2 ? tvb_get_letohs(tvb, offset) : tvb_get_letohl(tvb, offset);
    return tree;
}

/* The vsockmon header: always 32 bytes (the caller checked). */
static void dissect_vsockmon_header(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                    vsock_packet_info_t *packet, proto_item **op_item,
                                    proto_item **trans_len_item)
{
    proto_item *item;
    uint32_t reserved;

    add_cid(tree, hf_vsock_src_cid, tvb, 0, pinfo, &packet->src_cid);
    add_cid(tree, hf_vsock_dst_cid, tvb, 8, pinfo, &packet->dst_cid);
    add_uint(tree, hf_vsock_src_port, tvb, 16, 4, &packet->src_port);
    add_uint(tree, hf_vsock_dst_port, tvb, 20, 4, &packet->dst_port);

    /* Either end, like tcp.port. Hidden items show nowhere: added only when a
     * filter, a column or a full dissection asks for them (every packet). */
    if (proto_field_is_referenced(tree, hf_vsock_cid)) {
        proto_item_set_hidden(proto_tree_add_item(tree, hf_vsock_cid, tvb, 0, 8, ENC_LITTLE_ENDIAN));
        proto_item_set_hidden(proto_tree_add_item(tree, hf_vsock_cid, tvb, 8, 8, ENC_LITTLE_ENDIAN));
    }
    if (proto_field_is_referenced(tree, hf_vsock_port)) {
        proto_item_set_hidden(proto_tree_add_item(tree, hf_vsock_port, tvb, 16, 4, ENC_LITTLE_ENDIAN));
        proto_item_set_hidden(proto_tree_add_item(tree, hf_vsock_port, tvb, 20, 4, ENC_LITTLE_ENDIAN));
    }

    *op_item = add_uint(tree, hf_vsock_op, tvb, 24, 2, &packet->op);
    if (try_val_to_str(packet->op, vsockmon_op_vals) == NULL)
        expert_add_info_format(pinfo, *op_item, &ei_vsock_op_unknown, "Unknown vsockmon operation %u", packet->op);

    item = add_uint(tree, hf_vsock_trans, tvb, 26, 2, &packet->transport);
    if (try_val_to_str(packet->transport, vsockmon_transport_vals) == NULL)
        expert_add_info_format(pinfo, item, &ei_vsock_trans_unknown, "Unknown transport %u", packet->transport);

    *trans_len_item = add_uint(tree, hf_vsock_trans_len, tvb, 28, 2, &packet->trans_len);

    item = proto_field_is_referenced(tree, hf_vsock_reserved)
           ? proto_tree_add_item(tree, hf_vsock_reserved, tvb, 30, 2, ENC_NA) : tree;
    reserved = tvb_get_letohs(tvb, 30);
    if (reserved != 0)
        expert_add_info_format(pinfo, item, &ei_vsock_reserved_nonzero,
                               "Reserved field is 0x%04x, should be zero", reserved);
}

static void add_virtio_flags(proto_tree *tree, tvbuff_t *tvb, int offset, packet_info *pinfo,
                             const vsock_packet_info_t *packet)
{
    const virtio_flag_family_t *family = virtio_flag_family(packet);
    const uint32_t unknown = packet->flags & ~(family ? family->defined : 0);
    proto_item *item;

    if (family)
        item = proto_tree_add_bitmask(tree, tvb, offset, hf_vsock_virtio_flags, ett_vsock_virtio_flags,
                                      family->fields, ENC_LITTLE_ENDIAN);
    else
        item = proto_tree_add_item(tree, hf_vsock_virtio_flags, tvb, offset, 4, ENC_LITTLE_ENDIAN);

    if (unknown)
        expert_add_info_format(pinfo, item, &ei_vsock_virtio_flags_unknown,
                               "Flag bits 0x%08x are not defined for this operation", unknown);
    if (packet->virtio_op == VIRTIO_VSOCK_OP_SHUTDOWN && packet->flags == 0)
        expert_add_info(pinfo, item, &ei_vsock_virtio_flags_shutdown_none);
}

/* Appends text to a tree item's label being built in label (ITEM_LABEL_LENGTH
 * bytes) at len; returns the new length. The busiest labels are built so:
 * printf cost more than the items they title. */
static size_t label_append(char *label, size_t len, const char *text)
{
    size_t n = strlen(text);

    if (n > ITEM_LABEL_LENGTH - 1 - len)
        n = ITEM_LABEL_LENGTH - 1 - len;
    memcpy(label + len, text, n);
    label[len + n] = '\0';
    return len + n;
}

/* The virtio header, 44 bytes at offset (the caller checked they are there).
 * Fills packet and flags every disagreement with the vsockmon header. */
static void dissect_virtio_header(tvbuff_t *tvb, int offset, packet_info *pinfo, proto_tree *tree,
                                  vsock_packet_info_t *packet, proto_item *vsockmon_op_item)
{
    proto_tree *virtio_tree;
    proto_item *item;
    char label[ITEM_LABEL_LENGTH];
    size_t label_len;
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;

    /* The title whole at once (appending to it formats the label twice),
     * for a visible tree only (no other keeps it), and only for a header the
     * capture holds whole, as when its end was appended. */
    label_len = label_append(label, 0, "Virtio transport header");
    if (tree && PTREE_DATA(tree)->visible && tvb_bytes_exist(tvb, offset, VIRTIO_VSOCK_HDR_LEN)) {
        label_len = label_append(label, label_len, ", ");
        label_len = label_append(label, label_len,
                                 val_to_str_const(tvb_get_letohs(tvb, offset + 28), virtio_type_vals, "Unknown type"));
        label_len = label_append(label, label_len, ", ");
        label_append(label, label_len, val_to_str_const(tvb_get_letohs(tvb, offset + 30), virtio_op_vals, "Unknown op"));
    }
    virtio_tree = proto_tree_add_subtree(tree, tvb, offset, VIRTIO_VSOCK_HDR_LEN, ett_vsock_virtio, NULL, label);

    item = add_cid(virtio_tree, hf_vsock_virtio_src_cid, tvb, offset, pinfo, &src_cid);
    if (src_cid != packet->src_cid)
        expert_add_info_format(pinfo, item, &ei_vsock_cid_mismatch,
                               "Virtio source CID %" PRIu64 " differs from vsockmon source CID %" PRIu64,
                               src_cid, packet->src_cid);
    item = add_cid(virtio_tree, hf_vsock_virtio_dst_cid, tvb, offset + 8, pinfo, &dst_cid);
    if (dst_cid != packet->dst_cid)
        expert_add_info_format(pinfo, item, &ei_vsock_cid_mismatch,
                               "Virtio destination CID %" PRIu64 " differs from vsockmon destination CID %" PRIu64,
                               dst_cid, packet->dst_cid);

    item = add_uint(virtio_tree, hf_vsock_virtio_src_port, tvb, offset + 16, 4, &src_port);
    if (src_port != packet->src_port)
        expert_add_info_format(pinfo, item, &ei_vsock_port_mismatch,
                               "Virtio source port %u differs from vsockmon source port %u", src_port, packet->src_port);
    item = add_uint(virtio_tree, hf_vsock_virtio_dst_port, tvb, offset + 20, 4, &dst_port);
    if (dst_port != packet->dst_port)
        expert_add_info_format(pinfo, item, &ei_vsock_port_mismatch,
                               "Virtio destination port %u differs from vsockmon destination port %u", dst_port, packet->dst_port);
    /* The built-in dissector's misspelled names, kept so old filters match. */
    if (proto_field_is_referenced(tree, hf_vsock_virtio_src_prot))
        proto_item_set_hidden(proto_tree_add_item(virtio_tree, hf_vsock_virtio_src_prot, tvb, offset + 16, 4, ENC_LITTLE_ENDIAN));
    if (proto_field_is_referenced(tree, hf_vsock_virtio_dst_prot))
        proto_item_set_hidden(proto_tree_add_item(virtio_tree, hf_vsock_virtio_dst_prot, tvb, offset + 20, 4, ENC_LITTLE_ENDIAN));

    add_uint(virtio_tree, hf_vsock_virtio_len, tvb, offset + 24, 4, &packet->len);

    item = add_uint(virtio_tree, hf_vsock_virtio_type, tvb, offset + 28, 2, &packet->type);
    if (try_val_to_str(packet->type, virtio_type_vals) == NULL)
        expert_add_info_format(pinfo, item, &ei_vsock_virtio_type_unknown, "Unknown socket type %u", packet->type);

    item = add_uint(virtio_tree, hf_vsock_virtio_op, tvb, offset + 30, 2, &packet->virtio_op);
    if (packet->virtio_op == VIRTIO_VSOCK_OP_INVALID)
        expert_add_info(pinfo, item, &ei_vsock_virtio_op_invalid);
    else if (try_val_to_str(packet->virtio_op, virtio_op_vals) == NULL)
        expert_add_info_format(pinfo, item, &ei_vsock_virtio_op_unknown, "Unknown virtio operation %u", packet->virtio_op);
    if (vsockmon_op_for_virtio_op(packet->virtio_op) != packet->op)
        expert_add_info_format(pinfo, vsockmon_op_item, &ei_vsock_op_mismatch,
                               "vsockmon operation %s does not match virtio operation %s (expected %s)",
                               val_to_str_const(packet->op, vsockmon_op_vals, "Unknown"),
                               val_to_str_const(packet->virtio_op, virtio_op_vals, "Unknown"),
                               val_to_str_const(vsockmon_op_for_virtio_op(packet->virtio_op), vsockmon_op_vals, "Unknown"));

    packet->flags = tvb_get_letohl(tvb, offset + 32);
    add_virtio_flags(virtio_tree, tvb, offset + 32, pinfo, packet);

    add_uint(virtio_tree, hf_vsock_virtio_buf_alloc, tvb, offset + 36, 4, &packet->buf_alloc);
    add_uint(virtio_tree, hf_vsock_virtio_fwd_cnt, tvb, offset + 40, 4, &packet->fwd_cnt);

    packet->has_virtio = true;
}

/* Shows transport header bytes that are not decoded. */
static void add_trans_hdr_bytes(proto_tree *tree, tvbuff_t *tvb, int offset, int len)
{
    if (len > 0)
        proto_tree_add_item(tree, hf_vsock_trans_hdr, tvb, offset, len, ENC_NA);
}

/* The transport header after the vsockmon header. Returns the offset of the
 * payload, or -1 when the header runs past the end of the packet. */
static int dissect_transport_header(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                    vsock_packet_info_t *packet, proto_item *trans_len_item,
                                    proto_item *vsockmon_op_item)
{
    const int offset = VSOCKMON_HDR_LEN;
    const int available = tvb_reported_length_remaining(tvb, offset);
    /* The virtio header has a fixed size whatever trans_len claims. */
    const int hdr_len = packet->transport == VSOCKMON_TRANSPORT_VIRTIO
                        ? MAX((int)packet->trans_len, VIRTIO_VSOCK_HDR_LEN) : (int)packet->trans_len;

    if ((int)packet->trans_len > available)
        expert_add_info_format(pinfo, trans_len_item, &ei_vsock_trans_len_past_end,
                               "Transport length %u runs past the end of the packet (%d bytes left)",
                               packet->trans_len, available);

    if (packet->transport != VSOCKMON_TRANSPORT_VIRTIO) {
        if (packet->trans_len > 0 && packet->transport != VSOCKMON_TRANSPORT_NO_INFO)
            expert_add_info_format(pinfo, trans_len_item, &ei_vsock_trans_hdr_skipped,
                                   "%u bytes of a transport header that is not decoded were skipped",
                                   packet->trans_len);
        add_trans_hdr_bytes(tree, tvb, offset, MIN(hdr_len, available));
        return hdr_len > available ? -1 : offset + hdr_len;
    }

    if (packet->trans_len != VIRTIO_VSOCK_HDR_LEN)
        expert_add_info_format(pinfo, trans_len_item, &ei_vsock_virtio_hdr_len_bad,
                               "Transport length %u, but the virtio header is %d bytes",
                               packet->trans_len, VIRTIO_VSOCK_HDR_LEN);
    if (available < VIRTIO_VSOCK_HDR_LEN) {
        proto_item *item = proto_tree_add_item(tree, hf_vsock_trans_hdr, tvb, offset, available, ENC_NA);
        /* Unless trans_len already said so, the frame ends inside the header. */
        if ((int)packet->trans_len <= available)
            expert_add_info_format(pinfo, item, &ei_vsock_virtio_truncated,
                                   "Virtio header truncated: %d of %d bytes", available, VIRTIO_VSOCK_HDR_LEN);
        return -1;
    }

    dissect_virtio_header(tvb, offset, pinfo, tree, packet, vsockmon_op_item);
    add_trans_hdr_bytes(tree, tvb, offset + VIRTIO_VSOCK_HDR_LEN,
                        MIN(hdr_len, available) - VIRTIO_VSOCK_HDR_LEN);
    return hdr_len > available ? -1 : offset + hdr_len;
}

/* Whether this packet's payload is application data for the subdissectors. */
static bool carries_data(const vsock_packet_info_t *packet)
{
    if (packet->has_virtio)
        return packet->virtio_op == VIRTIO_VSOCK_OP_RW;
    return packet->op == VSOCKMON_OP_PAYLOAD;
}

/* Payload bytes: bounded by virtio len (Linux kernels without commit
 * 5f344d809e01, "vsock/virtio: fix packet capture", capture split vhost
 * packets with the rest of the original packet behind them).
 * Returns the application data for the subdissectors, or NULL. */
static tvbuff_t *dissect_payload_part(tvbuff_t *tvb, int offset, packet_info *pinfo,
                                      proto_tree *tree, vsock_packet_info_t *packet)
{
    const uint32_t remaining = (uint32_t)tvb_reported_length_remaining(tvb, offset);
    uint32_t excess = 0;
    proto_item *len_item;

    packet->payload_len = remaining;
    if (packet->has_virtio && remaining > packet->len) {
        packet->payload_len = packet->len;
        excess = remaining - packet->len;
    }

    len_item = tree;
    if (proto_field_is_referenced(tree, hf_vsock_len)) {
        len_item = proto_tree_add_uint(tree, hf_vsock_len, tvb, offset, packet->payload_len, packet->payload_len);
        proto_item_set_generated(len_item);
    }

    if (packet->has_virtio && remaining != packet->len) {
        if (excess)
            expert_add_info_format(pinfo, len_item, &ei_vsock_len_mismatch,
                                   "Frame holds %u payload bytes but virtio len is %u: only the first %u are payload "
                                   "(how kernels without Linux commit 5f344d809e01 capture packets split by vhost)",
                                   remaining, packet->len, packet->len);
        else
            expert_add_info_format(pinfo, len_item, &ei_vsock_len_mismatch,
                                   "Frame holds %u payload bytes but virtio len is %u "
                                   "(a kernel capture bug or a damaged capture)",
                                   remaining, packet->len);
    }
    if (packet->has_virtio && packet->virtio_op == VIRTIO_VSOCK_OP_RW && packet->len == 0)
        expert_add_info(pinfo, len_item, &ei_vsock_virtio_len_zero);

    if (packet->payload_len > 0) {
        proto_item *payload_item = tree;

        /* Added or not, a payload cut by the capture's snap length ends the
         * dissection here, as adding it does: reassembly must not see it. */
        if (proto_field_is_referenced(tree, hf_vsock_payload))
            payload_item = proto_tree_add_item(tree, hf_vsock_payload, tvb, offset, packet->payload_len, ENC_NA);
        else
            tvb_ensure_bytes_exist(tvb, offset, (int)packet->payload_len);
        if (!carries_data(packet))
            expert_add_info_format(pinfo, payload_item, &ei_vsock_payload_unexpected,
                                   "%u payload bytes on a packet that carries no data", packet->payload_len);
    }
    if (excess)
        proto_tree_add_item(tree, hf_vsock_payload_excess, tvb, offset + packet->payload_len, excess, ENC_NA);

    if (packet->payload_len > 0 && carries_data(packet))
        return tvb_new_subset_length(tvb, offset, packet->payload_len);
    return NULL;
}

/* The Info column's flag text: " rcv,send", " EOM", ... ("" without flags). */
static const char *flag_text(const vsock_packet_info_t *packet)
{
    const virtio_flag_family_t *family = virtio_flag_family(packet);

    return family ? family->info_text[packet->flags & family->defined] : "";
}

/* Info column in TCP's style: "50000 → 1234 [SHUTDOWN rcv,send]". It is the
 * dissector's busiest line: its pieces are joined without printf, which cost
 * a fifth of the dissector. */
static void set_info_column(packet_info *pinfo, const vsock_packet_info_t *packet)
{
    char src_port[11], dst_port[11], value1[11] = "", value2[11] = "";
    const char *op, *type = "", *after_op = "]", *label2 = "";

    /* No columns to fill (tshark -T fields, a filter pass). */
    if (!pinfo->cinfo)
        return;
    vsock_uint32_to_str_buf(packet->src_port, src_port, sizeof src_port);
    vsock_uint32_to_str_buf(packet->dst_port, dst_port, sizeof dst_port);

    if (!packet->has_virtio) {
        col_add_lstr(pinfo->cinfo, COL_INFO, src_port, " " UTF8_RIGHTWARDS_ARROW " ", dst_port, " [",
                     vsock_val_to_str(pinfo->pool, packet->op, vsockmon_op_vals, "op %u"), "] Transport: ",
                     vsock_val_to_str(pinfo->pool, packet->transport, vsockmon_transport_vals, "%u"),
                     COL_ADD_LSTR_TERMINATOR);
        return;
    }

    op = vsock_val_to_str(pinfo->pool, packet->virtio_op, virtio_op_short_vals, "OP %u");
    if (packet->type != VIRTIO_VSOCK_TYPE_STREAM)
        type = wmem_strdup_printf(pinfo->pool, " (%s)",
                                  vsock_val_to_str(pinfo->pool, packet->type, virtio_type_short_vals, "type %u"));

    /* After the op: "] Len=N" for data, the credit for the ops that carry it. */
    switch (packet->virtio_op) {
    case VIRTIO_VSOCK_OP_RW:
        after_op = "] Len=";
        vsock_uint32_to_str_buf(packet->payload_len, value1, sizeof value1);
        break;
    case VIRTIO_VSOCK_OP_REQUEST:
    case VIRTIO_VSOCK_OP_RESPONSE:
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        after_op = "] buf_alloc=";
        vsock_uint32_to_str_buf(packet->buf_alloc, value1, sizeof value1);
        label2 = " fwd_cnt=";
        vsock_uint32_to_str_buf(packet->fwd_cnt, value2, sizeof value2);
        break;
    default:
        break;
    }
    col_add_lstr(pinfo->cinfo, COL_INFO, src_port, " " UTF8_RIGHTWARDS_ARROW " ", dst_port, " [", op,
                 flag_text(packet), after_op, value1, label2, value2, type, COL_ADD_LSTR_TERMINATOR);
}

/* Appends ", Src: 2:1234" (what, cid, port) to a label being built. */
static size_t label_append_endpoint(char *label, size_t len, const char *what, uint64_t cid, uint32_t port)
{
    char number[21];

    len = label_append(label, len, what);
    vsock_uint64_to_str_buf(cid, number, sizeof number);
    len = label_append(label, len, number);
    len = label_append(label, len, ":");
    vsock_uint32_to_str_buf(port, number, sizeof number);
    return label_append(label, len, number);
}

/* "vSocket, Src: 2:1234, Dst: 3:5678, Op: RW, Len: 10", joined from its
 * pieces: appended with printf (after the label was formatted once) and with
 * address_to_str it cost as much as the header's 20 items together, in the
 * visible tree of every tshark -T fields, -V and -T pdml. */
static void set_protocol_text(proto_item *vsock_item, packet_info *pinfo, const vsock_packet_info_t *packet)
{
    char label[ITEM_LABEL_LENGTH], number[11];
    size_t len = label_append(label, 0, proto_get_protocol_name(proto_vsock));

    len = label_append_endpoint(label, len, ", Src: ", packet->src_cid, packet->src_port);
    len = label_append_endpoint(label, len, ", Dst: ", packet->dst_cid, packet->dst_port);
    len = label_append(label, len, ", Op: ");
    len = label_append(label, len, packet->has_virtio
                       ? vsock_val_to_str(pinfo->pool, packet->virtio_op, virtio_op_vals, "Unknown (%u)")
                       : vsock_val_to_str(pinfo->pool, packet->op, vsockmon_op_vals, "Unknown (%u)"));
    len = label_append(label, len, ", Len: ");
    vsock_uint32_to_str_buf(packet->payload_len, number, sizeof number);
    label_append(label, len, number);
    proto_item_set_text(vsock_item, "%s", label);
}

static int dissect_vsock(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    proto_item *vsock_item, *trans_len_item, *op_item;
    proto_tree *vsock_tree;
    vsock_packet_info_t *packet;
    int payload_offset;
    tvbuff_t *payload_tvb = NULL;
    const vsock_analysis_packet_t *analysis;

    col_set_str(pinfo->cinfo, COL_PROTOCOL, "vsock");
    col_clear(pinfo->cinfo, COL_INFO);

    vsock_item = proto_tree_add_item(tree, proto_vsock, tvb, 0, -1, ENC_NA);
    vsock_tree = proto_item_add_subtree(vsock_item, ett_vsock);

    if (tvb_reported_length(tvb) < VSOCKMON_HDR_LEN) {
        expert_add_info_format(pinfo, vsock_item, &ei_vsock_hdr_short,
                               "vsockmon header truncated: %u of %d bytes",
                               tvb_reported_length(tvb), VSOCKMON_HDR_LEN);
        col_set_str(pinfo->cinfo, COL_INFO, "[Truncated vsockmon header]");
        add_trans_hdr_bytes(vsock_tree, tvb, 0, (int)tvb_reported_length(tvb));
        return tvb_captured_length(tvb);
    }

    packet = wmem_new0(pinfo->pool, vsock_packet_info_t);
    dissect_vsockmon_header(tvb, pinfo, vsock_tree, packet, &op_item, &trans_len_item);

    set_address_tvb(&pinfo->src, vsock_address_type, 8, tvb, 0);
    set_address_tvb(&pinfo->dst, vsock_address_type, 8, tvb, 8);
    pinfo->srcport = packet->src_port;
    pinfo->destport = packet->dst_port;

    payload_offset = dissect_transport_header(tvb, pinfo, vsock_tree, packet, trans_len_item, op_item);
    if (payload_offset >= 0)
        payload_tvb = dissect_payload_part(tvb, payload_offset, pinfo, vsock_tree, packet);

    packet->frame_len = tvb_reported_length(tvb);
    packet->conv = vsock_conversation_track(pinfo, packet);
    analysis = vsock_analysis_track(pinfo, packet);
    set_info_column(pinfo, packet);
    if (analysis)
        vsock_analysis_tag_info(pinfo, analysis);
    if (packet->conv)
        vsock_conversation_add_tree(tvb, pinfo, vsock_tree, packet, packet->conv);
    if (analysis)
        vsock_analysis_add_tree(tvb, pinfo, vsock_tree, packet, analysis);
    /* Only a visible tree shows the text: not worth formatting otherwise. */
    if (tree && PTREE_DATA(tree)->visible)
        set_protocol_text(vsock_item, pinfo, packet);

    vsock_taps_queue(pinfo, packet, payload_tvb);
    /* After our Info: an application protocol replaces it, as over TCP. */
    if (payload_tvb)
        vsock_reassembly_dissect(payload_tvb, pinfo, tree, packet);
    else if (packet->has_virtio && packet->virtio_op == VIRTIO_VSOCK_OP_RST)
        vsock_reassembly_note_rst(pinfo, vsock_tree, packet);
    return tvb_captured_length(tvb);
}

void proto_register_vsock_plugin(void)
{
    static hf_register_info hf[] = {
        /* vsockmon header; names and types as the built-in dissector has them */
        { &hf_vsock_src_cid,
          { "Source CID", "vsock.src_cid", FT_UINT64, BASE_CUSTOM, CF_FUNC(format_cid),
            0x0, NULL, HFILL } },
        { &hf_vsock_dst_cid,
          { "Destination CID", "vsock.dst_cid", FT_UINT64, BASE_CUSTOM, CF_FUNC(format_cid),
            0x0, NULL, HFILL } },
        { &hf_vsock_src_port,
          { "Source port", "vsock.src_port", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_dst_port,
          { "Destination port", "vsock.dst_port", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_cid,
          { "Source or Destination CID", "vsock.cid", FT_UINT64, BASE_CUSTOM, CF_FUNC(format_cid),
            0x0, NULL, HFILL } },
        { &hf_vsock_port,
          { "Source or Destination port", "vsock.port", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_op,
          { "Operation", "vsock.op", FT_UINT16, BASE_DEC, VALS(vsockmon_op_vals),
            0x0, NULL, HFILL } },
        { &hf_vsock_trans,
          { "Transport", "vsock.trans", FT_UINT16, BASE_DEC, VALS(vsockmon_transport_vals),
            0x0, NULL, HFILL } },
        { &hf_vsock_trans_len,
          { "Transport header length", "vsock.trans_len", FT_UINT16, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_reserved,
          { "Reserved", "vsock.reserved", FT_BYTES, BASE_NONE, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_trans_hdr,
          { "Transport header bytes (not decoded)", "vsock.trans_hdr", FT_BYTES, BASE_NONE, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_payload,
          { "Payload", "vsock.payload", FT_BYTES, BASE_NONE, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_payload_excess,
          { "Bytes beyond the payload length", "vsock.payload_excess", FT_BYTES, BASE_NONE, NULL,
            0x0, "Frame bytes after the virtio len payload bytes (vhost capture bug fixed by Linux commit 5f344d809e01)", HFILL } },
        { &hf_vsock_len,
          { "Payload length", "vsock.len", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },

        /* virtio transport header */
        { &hf_vsock_virtio_src_cid,
          { "Source CID", "vsock.virtio.src_cid", FT_UINT64, BASE_CUSTOM, CF_FUNC(format_cid),
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_dst_cid,
          { "Destination CID", "vsock.virtio.dst_cid", FT_UINT64, BASE_CUSTOM, CF_FUNC(format_cid),
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_src_port,
          { "Source port", "vsock.virtio.src_port", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_dst_port,
          { "Destination port", "vsock.virtio.dst_port", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_src_prot,
          { "Source port (old name)", "vsock.virtio.src_prot", FT_UINT32, BASE_DEC, NULL,
            0x0, "Alias of vsock.virtio.src_port kept for filters written for the built-in dissector", HFILL } },
        { &hf_vsock_virtio_dst_prot,
          { "Destination port (old name)", "vsock.virtio.dst_prot", FT_UINT32, BASE_DEC, NULL,
            0x0, "Alias of vsock.virtio.dst_port kept for filters written for the built-in dissector", HFILL } },
        { &hf_vsock_virtio_len,
          { "Length", "vsock.virtio.len", FT_UINT32, BASE_DEC, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_type,
          { "Type", "vsock.virtio.type", FT_UINT16, BASE_DEC, VALS(virtio_type_vals),
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_op,
          { "Operation", "vsock.virtio.op", FT_UINT16, BASE_DEC, VALS(virtio_op_vals),
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_flags,
          { "Flags", "vsock.virtio.flags", FT_UINT32, BASE_HEX, NULL,
            0x0, NULL, HFILL } },
        { &hf_vsock_virtio_flags_shutdown_rcv,
          { "No more receive", "vsock.virtio.flags.shutdown_rcv", FT_BOOLEAN, 32, NULL,
            VIRTIO_VSOCK_SHUTDOWN_RCV, NULL, HFILL } },
        { &hf_vsock_virtio_flags_shutdown_send,
          { "No more send", "vsock.virtio.flags.shutdown_send", FT_BOOLEAN, 32, NULL,
            VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, HFILL } },
        { &hf_vsock_virtio_flags_seq_eom,
          { "End of message", "vsock.virtio.flags.seq_eom", FT_BOOLEAN, 32, NULL,
            VIRTIO_VSOCK_SEQ_EOM, NULL, HFILL } },
        { &hf_vsock_virtio_flags_seq_eor,
          { "End of record", "vsock.virtio.flags.seq_eor", FT_BOOLEAN, 32, NULL,
            VIRTIO_VSOCK_SEQ_EOR, NULL, HFILL } },
        { &hf_vsock_virtio_buf_alloc,
          { "Buffer allocation", "vsock.virtio.buf_alloc", FT_UINT32, BASE_DEC, NULL,
            0x0, "Receive buffer size of the sender", HFILL } },
        { &hf_vsock_virtio_fwd_cnt,
          { "Forward count", "vsock.virtio.fwd_cnt", FT_UINT32, BASE_DEC, NULL,
            0x0, "Free-running count of bytes the sender has consumed", HFILL } },
    };

    static int *ett[] = {
        &ett_vsock,
        &ett_vsock_virtio,
        &ett_vsock_virtio_flags,
    };

    static ei_register_info ei[] = {
        { &ei_vsock_hdr_short,
          { "vsock.hdr.short", PI_MALFORMED, PI_ERROR,
            "vsockmon header shorter than 32 bytes", EXPFILL } },
        { &ei_vsock_trans_len_past_end,
          { "vsock.trans_len.past_end", PI_MALFORMED, PI_ERROR,
            "Transport header runs past the end of the packet", EXPFILL } },
        { &ei_vsock_trans_unknown,
          { "vsock.trans.unknown", PI_PROTOCOL, PI_WARN,
            "Unknown transport", EXPFILL } },
        { &ei_vsock_trans_hdr_skipped,
          { "vsock.trans_hdr.skipped", PI_PROTOCOL, PI_NOTE,
            "Transport header not decoded, skipped", EXPFILL } },
        { &ei_vsock_op_unknown,
          { "vsock.op.unknown", PI_PROTOCOL, PI_WARN,
            "Unknown vsockmon operation", EXPFILL } },
        { &ei_vsock_op_mismatch,
          { "vsock.op.mismatch", PI_PROTOCOL, PI_WARN,
            "vsockmon operation does not match the virtio operation", EXPFILL } },
        { &ei_vsock_reserved_nonzero,
          { "vsock.reserved.nonzero", PI_PROTOCOL, PI_WARN,
            "Reserved field is not zero", EXPFILL } },
        { &ei_vsock_cid_reserved_bits,
          { "vsock.cid.reserved_bits", PI_PROTOCOL, PI_WARN,
            "Upper 32 bits of a CID are set", EXPFILL } },
        { &ei_vsock_cid_mismatch,
          { "vsock.cid.mismatch", PI_PROTOCOL, PI_WARN,
            "vsockmon and virtio headers disagree on a CID", EXPFILL } },
        { &ei_vsock_port_mismatch,
          { "vsock.port.mismatch", PI_PROTOCOL, PI_WARN,
            "vsockmon and virtio headers disagree on a port", EXPFILL } },
        { &ei_vsock_len_mismatch,
          { "vsock.len.mismatch", PI_PROTOCOL, PI_WARN,
            "Payload length differs from virtio len", EXPFILL } },
        { &ei_vsock_payload_unexpected,
          { "vsock.payload.unexpected", PI_PROTOCOL, PI_WARN,
            "Payload on a packet that carries no data", EXPFILL } },
        { &ei_vsock_virtio_hdr_len_bad,
          { "vsock.virtio.hdr_len.bad", PI_MALFORMED, PI_WARN,
            "Transport length is not the 44-byte virtio header", EXPFILL } },
        { &ei_vsock_virtio_truncated,
          { "vsock.virtio.truncated", PI_MALFORMED, PI_ERROR,
            "Virtio header truncated", EXPFILL } },
        { &ei_vsock_virtio_op_unknown,
          { "vsock.virtio.op.unknown", PI_PROTOCOL, PI_WARN,
            "Unknown virtio operation", EXPFILL } },
        { &ei_vsock_virtio_op_invalid,
          { "vsock.virtio.op.invalid", PI_PROTOCOL, PI_WARN,
            "Operation 0 (VIRTIO_VSOCK_OP_INVALID)", EXPFILL } },
        { &ei_vsock_virtio_type_unknown,
          { "vsock.virtio.type.unknown", PI_PROTOCOL, PI_WARN,
            "Unknown socket type", EXPFILL } },
        { &ei_vsock_virtio_len_zero,
          { "vsock.virtio.len.zero", PI_PROTOCOL, PI_WARN,
            "RW packet without payload (Linux never sends one)", EXPFILL } },
        { &ei_vsock_virtio_flags_unknown,
          { "vsock.virtio.flags.unknown", PI_PROTOCOL, PI_WARN,
            "Flag bits not defined for this operation", EXPFILL } },
        { &ei_vsock_virtio_flags_shutdown_none,
          { "vsock.virtio.flags.shutdown_none", PI_PROTOCOL, PI_WARN,
            "SHUTDOWN with neither RCV nor SEND set", EXPFILL } },
    };

    expert_module_t *expert;
    module_t *prefs;

    /* Adopt the built-in protocol: registering "vsock" twice aborts, and
     * adopting it keeps every filter users already have. */
    proto_vsock = proto_get_id_by_filter_name("vsock");
    if (proto_vsock == -1)
        proto_vsock = proto_register_protocol("vSocket", "vsock", "vsock");

    proto_register_field_array(proto_vsock, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert = expert_register_protocol(proto_vsock);
    expert_register_field_array(expert, ei, array_length(ei));
    /* The built-in has no preferences; should it gain some one day, adding
     * ours to its module is what works (registering a second one aborts). */
    prefs = prefs_find_module("vsock");
    if (prefs == NULL)
        prefs = prefs_register_protocol(proto_vsock, NULL);

    vsock_address_type = address_type_dissector_register("AT_VSOCK_CID", "vsock CID",
                                                         vsock_cid_to_str, vsock_cid_str_len, NULL,
                                                         vsock_cid_col_filter, vsock_cid_len,
                                                         vsock_cid_name, vsock_cid_name_len);

    vsock_handle = create_dissector_handle(dissect_vsock, proto_vsock);
    vsock_conversation_register(proto_vsock, expert);
    vsock_analysis_register(proto_vsock, prefs, expert);
    vsock_payload_register(proto_vsock, prefs);
    vsock_reassembly_register(proto_vsock, prefs, expert);
    vsock_taps_register(proto_vsock, vsock_address_type);
}

void proto_reg_handoff_vsock_plugin(void)
{
    /* Plugin handoffs run after the built-in ones: this replaces the built-in. */
    dissector_add_uint("wtap_encap", WTAP_ENCAP_VSOCK, vsock_handle);
    vsock_payload_handoff();
    vsock_taps_handoff();
}
