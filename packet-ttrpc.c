/* packet-ttrpc.c
 * ttrpc, containerd's lightweight RPC protocol, as the Kata Containers agent
 * speaks it over vsock (port 1024). Frames, the Request/Response envelopes,
 * request/response matching per stream id; the inner messages go to the
 * protobuf dissector, which types them when the user loads .proto files.
 *
 * Protocol: https://github.com/containerd/ttrpc/blob/main/PROTOCOL.md
 * (10-byte big-endian header, then data); envelopes: request.proto there.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/exceptions.h>
#include <epan/expert.h>
#include <epan/proto_data.h>
#include <epan/show_exception.h>
#include <epan/tfs.h>

#include "vsock-compat.h"

#define TTRPC_HDR_LEN       10
#define TTRPC_MAX_DATA_LEN  (4u << 20)  /* ttrpc rejects larger messages */
#define TTRPC_VSOCK_PORTS   "1024"      /* the Kata agent */

#define TTRPC_TYPE_REQUEST  1
#define TTRPC_TYPE_RESPONSE 2
#define TTRPC_TYPE_DATA     3

#define TTRPC_FLAG_REMOTE_CLOSED 0x01
#define TTRPC_FLAG_REMOTE_OPEN   0x02
#define TTRPC_FLAG_NO_DATA       0x04
#define TTRPC_FLAGS_KNOWN        0x07

/* Field numbers of ttrpc's request.proto (and google.rpc.Status). */
#define REQUEST_SERVICE      1
#define REQUEST_METHOD       2
#define REQUEST_PAYLOAD      3
#define REQUEST_TIMEOUT_NANO 4
#define REQUEST_METADATA     5
#define KEYVALUE_KEY         1
#define KEYVALUE_VALUE       2
#define RESPONSE_STATUS      1
#define RESPONSE_PAYLOAD     2
#define STATUS_CODE          1
#define STATUS_MESSAGE       2
#define STATUS_DETAILS       3

/* Protobuf wire types ttrpc's envelopes can carry (groups are not used). */
enum pb_wire_type {
    PB_WIRE_VARINT = 0,
    PB_WIRE_I64    = 1,
    PB_WIRE_LEN    = 2,
    PB_WIRE_I32    = 5
};

/* Keys of per-packet data: PDUs dissected so far in this frame (pinfo->pool);
 * the first-pass record of the Nth PDU of the frame is key N (file scope). */
#define TTRPC_KEY_PDU_COUNT UINT32_MAX

void proto_register_ttrpc(void);
void proto_reg_handoff_ttrpc(void);

static const value_string ttrpc_type_vals[] = {
    { TTRPC_TYPE_REQUEST,  "Request" },
    { TTRPC_TYPE_RESPONSE, "Response" },
    { TTRPC_TYPE_DATA,     "Data" },
    { 0, NULL }
};

/* google.golang.org/grpc/codes, which ttrpc status codes use. */
static const value_string ttrpc_status_code_vals[] = {
    {  0, "OK" },
    {  1, "CANCELLED" },
    {  2, "UNKNOWN" },
    {  3, "INVALID_ARGUMENT" },
    {  4, "DEADLINE_EXCEEDED" },
    {  5, "NOT_FOUND" },
    {  6, "ALREADY_EXISTS" },
    {  7, "PERMISSION_DENIED" },
    {  8, "RESOURCE_EXHAUSTED" },
    {  9, "FAILED_PRECONDITION" },
    { 10, "ABORTED" },
    { 11, "OUT_OF_RANGE" },
    { 12, "UNIMPLEMENTED" },
    { 13, "INTERNAL" },
    { 14, "UNAVAILABLE" },
    { 15, "DATA_LOSS" },
    { 16, "UNAUTHENTICATED" },
    { 0, NULL }
};

static int proto_ttrpc = -1;

static int hf_ttrpc_length = -1;
static int hf_ttrpc_stream_id = -1;
static int hf_ttrpc_type = -1;
static int hf_ttrpc_flags = -1;
static int hf_ttrpc_flags_remote_closed = -1;
static int hf_ttrpc_flags_remote_open = -1;
static int hf_ttrpc_flags_no_data = -1;
static int hf_ttrpc_request = -1;
static int hf_ttrpc_response = -1;
static int hf_ttrpc_service = -1;
static int hf_ttrpc_method = -1;
static int hf_ttrpc_payload = -1;
static int hf_ttrpc_timeout = -1;
static int hf_ttrpc_metadata = -1;
static int hf_ttrpc_metadata_key = -1;
static int hf_ttrpc_metadata_value = -1;
static int hf_ttrpc_status = -1;
static int hf_ttrpc_status_code = -1;
static int hf_ttrpc_status_message = -1;
static int hf_ttrpc_status_details = -1;
static int hf_ttrpc_unknown_field = -1;
static int hf_ttrpc_response_in = -1;
static int hf_ttrpc_response_to = -1;
static int hf_ttrpc_time = -1;
static int hf_ttrpc_fragment = -1;

static int ett_ttrpc = -1;
static int ett_ttrpc_flags = -1;
static int ett_ttrpc_request = -1;
static int ett_ttrpc_response = -1;
static int ett_ttrpc_metadata = -1;
static int ett_ttrpc_status = -1;

static expert_field ei_ttrpc_header_bad = EI_INIT;
static expert_field ei_ttrpc_type_unknown = EI_INIT;
static expert_field ei_ttrpc_flags_unknown = EI_INIT;
static expert_field ei_ttrpc_pdu_incomplete = EI_INIT;
static expert_field ei_ttrpc_protobuf_bad = EI_INIT;
static expert_field ei_ttrpc_field_wire_type = EI_INIT;
static expert_field ei_ttrpc_response_no_request = EI_INIT;
static expert_field ei_ttrpc_status_error = EI_INIT;

static dissector_handle_t ttrpc_handle;
static dissector_handle_t protobuf_handle;

static int * const ttrpc_flags_bits[] = {
    &hf_ttrpc_flags_remote_closed,
    &hf_ttrpc_flags_remote_open,
    &hf_ttrpc_flags_no_data,
    NULL
};

typedef struct ttrpc_header {
    uint32_t length;
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
} ttrpc_header_t;

/* What the envelope of one PDU says (pinfo->pool). */
typedef struct ttrpc_body {
    const uint8_t *service;
    const uint8_t *method;
    bool has_payload;
    int payload_offset;
    int payload_length;
    bool has_status_code;
    int32_t status_code;       /* proto3: 0 (OK) when not sent */
} ttrpc_body_t;

/* One RPC: its request and, once seen, its response (wmem_file_scope). */
typedef struct ttrpc_call {
    uint32_t req_frame;
    uint32_t resp_frame;       /* 0 until the response is seen */
    nstime_t req_time;
    const char *service;      /* NULL if the request did not name it */
    const char *method;
    address client;           /* the requester, to tell the direction of data */
    uint32_t client_port;
} ttrpc_call_t;

/* Per conversation: the latest call of each stream id. Stream ids restart
 * when a connection is reused, so a new request replaces the old call. */
typedef struct ttrpc_conv {
    wmem_map_t *calls;
} ttrpc_conv_t;

/* First-pass result for one PDU; read on every pass. */
typedef struct ttrpc_pdu_info {
    ttrpc_call_t *call;       /* NULL: the stream's request was not seen */
} ttrpc_pdu_info_t;

/* ---- protobuf wire format, just enough for the envelopes ---- */

/* One field of a message. */
typedef struct pb_field {
    uint32_t number;
    uint32_t wire_type;
    int start;                /* first byte of the key */
    int offset;               /* first byte of the value (after a LEN field's length) */
    int length;               /* bytes of the value */
    uint64_t varint;           /* value of a VARINT field */
} pb_field_t;

typedef void (*pb_field_func)(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                              const pb_field_t *field, void *ctx);

static unsigned pb_get_varint(tvbuff_t *tvb, int offset, int end, uint64_t *value)
{
    return tvb_get_varint(tvb, offset, MIN(end - offset, FT_VARINT_MAX_LEN), value, ENC_VARINT_PROTOBUF);
}

/* Reads the field at offset, which must end by end; false if the bytes are
 * not protobuf wire format. */
static bool pb_read_field(tvbuff_t *tvb, int offset, int end, pb_field_t *field)
{
    uint64_t key, len;
    unsigned n;

    field->start = offset;
    n = pb_get_varint(tvb, offset, end, &key);
    /* The key is (field number << 3) | wire type; field numbers are 1..2^29-1. */
    if (n == 0 || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF)
        return false;
    field->number = (uint32_t)(key >> 3);
    field->wire_type = (uint32_t)(key & 0x7);
    offset += n;

    switch (field->wire_type) {
    case PB_WIRE_VARINT:
        n = pb_get_varint(tvb, offset, end, &field->varint);
        field->offset = offset;
        field->length = (int)n;
        return n != 0;
    case PB_WIRE_I64:
    case PB_WIRE_I32:
        field->offset = offset;
        field->length = field->wire_type == PB_WIRE_I64 ? 8 : 4;
        return field->length <= end - offset;
    case PB_WIRE_LEN:
        n = pb_get_varint(tvb, offset, end, &len);
        if (n == 0 || len > (uint64_t)(end - offset - (int)n))
            return false;
        field->offset = offset + (int)n;
        field->length = (int)len;
        return true;
    default:
        return false;
    }
}

/* Walks the fields of the message in [offset, end), handing each to func;
 * flags the first byte that is not wire format and stops there. */
static void dissect_pb_message(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int offset, int end,
                                   pb_field_func func, void *ctx)
{
    pb_field_t field = { 0 };

    while (offset < end) {
        if (!pb_read_field(tvb, offset, end, &field)) {
            proto_tree_add_expert_format(tree, pinfo, &ei_ttrpc_protobuf_bad, tvb, offset, end - offset,
                                         "Not protobuf wire format (%d bytes left)", end - offset);
            return;
        }
        func(tvb, pinfo, tree, &field, ctx);
        offset = field.offset + field.length;
    }
}

/* A known field number with an unexpected wire type is shown, not decoded. */
static bool pb_expect(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field,
                          uint32_t wire_type)
{
    if (field->wire_type == wire_type)
        return true;
    proto_tree_add_expert_format(tree, pinfo, &ei_ttrpc_field_wire_type, tvb, field->start,
                                 field->offset + field->length - field->start,
                                 "Field %u has wire type %u, expected %u",
                                 field->number, field->wire_type, wire_type);
    return false;
}

/* Fields a newer peer may add: shown as bytes. */
static void add_unknown_field(tvbuff_t *tvb, proto_tree *tree, const pb_field_t *field)
{
    proto_item *ti = proto_tree_add_item(tree, hf_ttrpc_unknown_field, tvb, field->start,
                                         field->offset + field->length - field->start, ENC_NA);
    proto_item_append_text(ti, " (field %u, wire type %u)", field->number, field->wire_type);
}

/* ---- envelopes ---- */

static void keyvalue_field(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field,
                           void *ctx)
{
    proto_item *kv_item = (proto_item *)ctx;
    const uint8_t *text;
    int hf;

    if (field->number != KEYVALUE_KEY && field->number != KEYVALUE_VALUE) {
        add_unknown_field(tvb, tree, field);
        return;
    }
    if (!pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
        return;
    hf = field->number == KEYVALUE_KEY ? hf_ttrpc_metadata_key : hf_ttrpc_metadata_value;
    proto_tree_add_item_ret_string(tree, hf, tvb, field->offset, field->length, ENC_UTF_8, pinfo->pool, &text);
    proto_item_append_text(kv_item, field->number == KEYVALUE_KEY ? ": %s" : " = %s", text);
}

static void dissect_metadata(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field)
{
    proto_item *ti = proto_tree_add_item(tree, hf_ttrpc_metadata, tvb, field->offset, field->length, ENC_NA);
    proto_tree *kv_tree = proto_item_add_subtree(ti, ett_ttrpc_metadata);

    dissect_pb_message(tvb, pinfo, kv_tree, field->offset, field->offset + field->length, keyvalue_field, ti);
}

static void add_payload(tvbuff_t *tvb, proto_tree *tree, int offset, int length, ttrpc_body_t *body)
{
    proto_tree_add_item(tree, hf_ttrpc_payload, tvb, offset, length, ENC_NA);
    body->has_payload = true;
    body->payload_offset = offset;
    body->payload_length = length;
}

static void request_field(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field, void *ctx)
{
    ttrpc_body_t *body = (ttrpc_body_t *)ctx;

    switch (field->number) {
    case REQUEST_SERVICE:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            proto_tree_add_item_ret_string(tree, hf_ttrpc_service, tvb, field->offset, field->length, ENC_UTF_8,
                                           pinfo->pool, &body->service);
        break;
    case REQUEST_METHOD:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            proto_tree_add_item_ret_string(tree, hf_ttrpc_method, tvb, field->offset, field->length, ENC_UTF_8,
                                           pinfo->pool, &body->method);
        break;
    case REQUEST_PAYLOAD:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            add_payload(tvb, tree, field->offset, field->length, body);
        break;
    case REQUEST_TIMEOUT_NANO:
        /* int64: a negative value is a 10-byte two's complement varint. */
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_VARINT))
            proto_tree_add_int64(tree, hf_ttrpc_timeout, tvb, field->offset, field->length, (int64_t)field->varint);
        break;
    case REQUEST_METADATA:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            dissect_metadata(tvb, pinfo, tree, field);
        break;
    default:
        add_unknown_field(tvb, tree, field);
        break;
    }
}

static void status_field(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field, void *ctx)
{
    ttrpc_body_t *body = (ttrpc_body_t *)ctx;

    switch (field->number) {
    case STATUS_CODE:
        /* int32 on the wire as a sign-extended varint: keep the low 32 bits. */
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_VARINT)) {
            body->has_status_code = true;
            body->status_code = (int32_t)(uint32_t)field->varint;
            proto_tree_add_int(tree, hf_ttrpc_status_code, tvb, field->offset, field->length, body->status_code);
        }
        break;
    case STATUS_MESSAGE:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            proto_tree_add_item(tree, hf_ttrpc_status_message, tvb, field->offset, field->length, ENC_UTF_8);
        break;
    case STATUS_DETAILS:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            proto_tree_add_item(tree, hf_ttrpc_status_details, tvb, field->offset, field->length, ENC_NA);
        break;
    default:
        add_unknown_field(tvb, tree, field);
        break;
    }
}

static void dissect_status(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field,
                           ttrpc_body_t *body)
{
    proto_item *ti = proto_tree_add_item(tree, hf_ttrpc_status, tvb, field->offset, field->length, ENC_NA);
    proto_tree *status_tree = proto_item_add_subtree(ti, ett_ttrpc_status);

    dissect_pb_message(tvb, pinfo, status_tree, field->offset, field->offset + field->length, status_field, body);
    if (!body->has_status_code) {
        /* OK is sent as an empty Status: show the implied code. */
        proto_item *code_item = proto_tree_add_int(status_tree, hf_ttrpc_status_code, tvb, field->offset, 0, 0);
        proto_item_set_generated(code_item);
    }
    proto_item_append_text(ti, ": %s (%d)",
                           val_to_str_const(body->status_code, ttrpc_status_code_vals, "Unknown"),
                           body->status_code);
    if (body->status_code != 0)
        expert_add_info_format(pinfo, ti, &ei_ttrpc_status_error, "Error status %d (%s)", body->status_code,
                               val_to_str_const(body->status_code, ttrpc_status_code_vals, "Unknown"));
}

static void response_field(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const pb_field_t *field, void *ctx)
{
    ttrpc_body_t *body = (ttrpc_body_t *)ctx;

    switch (field->number) {
    case RESPONSE_STATUS:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            dissect_status(tvb, pinfo, tree, field, body);
        break;
    case RESPONSE_PAYLOAD:
        if (pb_expect(tvb, pinfo, tree, field, PB_WIRE_LEN))
            add_payload(tvb, tree, field->offset, field->length, body);
        break;
    default:
        add_unknown_field(tvb, tree, field);
        break;
    }
}

/* The data of one PDU, after its header: a Request or Response envelope, or
 * a stream message as is. */
static void dissect_body(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const ttrpc_header_t *hdr,
                         ttrpc_body_t *body)
{
    const int end = TTRPC_HDR_LEN + (int)hdr->length;
    proto_item *ti;
    proto_tree *body_tree;

    switch (hdr->type) {
    case TTRPC_TYPE_REQUEST:
        ti = proto_tree_add_item(tree, hf_ttrpc_request, tvb, TTRPC_HDR_LEN, hdr->length, ENC_NA);
        body_tree = proto_item_add_subtree(ti, ett_ttrpc_request);
        dissect_pb_message(tvb, pinfo, body_tree, TTRPC_HDR_LEN, end, request_field, body);
        break;
    case TTRPC_TYPE_RESPONSE:
        ti = proto_tree_add_item(tree, hf_ttrpc_response, tvb, TTRPC_HDR_LEN, hdr->length, ENC_NA);
        body_tree = proto_item_add_subtree(ti, ett_ttrpc_response);
        dissect_pb_message(tvb, pinfo, body_tree, TTRPC_HDR_LEN, end, response_field, body);
        break;
    case TTRPC_TYPE_DATA:
        if (hdr->length > 0)
            add_payload(tvb, tree, TTRPC_HDR_LEN, (int)hdr->length, body);
        break;
    default:
        /* An unknown type: its bytes, for no one to interpret. */
        if (hdr->length > 0)
            proto_tree_add_item(tree, hf_ttrpc_payload, tvb, TTRPC_HDR_LEN, hdr->length, ENC_NA);
        break;
    }
}

/* ---- header ---- */

static void read_header(tvbuff_t *tvb, int offset, ttrpc_header_t *hdr)
{
    uint16_t type_flags = tvb_get_ntohs(tvb, offset + 8);

    hdr->length = tvb_get_ntohl(tvb, offset);
    hdr->stream_id = tvb_get_ntohl(tvb, offset + 4);
    /* Two one-byte fields (tvb_get_guint8 is deprecated from 4.4 on). */
    hdr->type = (uint8_t)(type_flags >> 8);
    hdr->flags = (uint8_t)(type_flags & 0xff);
}

/* What a peer's ttrpc would accept; the test that keeps us off other
 * protocols on port 1024 (gvisor-tap-vsock uses it too). */
static bool header_valid(const ttrpc_header_t *hdr)
{
    return hdr->length <= TTRPC_MAX_DATA_LEN &&
           hdr->type >= TTRPC_TYPE_REQUEST && hdr->type <= TTRPC_TYPE_DATA &&
           (hdr->flags & ~TTRPC_FLAGS_KNOWN) == 0;
}

/* The first bytes of a header: its first byte is always 0 (length <= 4 MiB),
 * the second at most 0x40; byte 8 is the type. */
static bool header_prefix_plausible(tvbuff_t *tvb, int offset, int avail)
{
    uint8_t prefix[TTRPC_HDR_LEN] = { 0 };

    tvb_memcpy(tvb, prefix, offset, MIN(avail, TTRPC_HDR_LEN));
    if (prefix[0] != 0 || prefix[1] > 0x40)
        return false;
    return avail < 9 || (prefix[8] >= TTRPC_TYPE_REQUEST && prefix[8] <= TTRPC_TYPE_DATA);
}

static void add_header(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const ttrpc_header_t *hdr)
{
    proto_item *len_item, *type_item, *flags_item;

    len_item = proto_tree_add_item(tree, hf_ttrpc_length, tvb, 0, 4, ENC_BIG_ENDIAN);
    proto_tree_add_item(tree, hf_ttrpc_stream_id, tvb, 4, 4, ENC_BIG_ENDIAN);
    type_item = proto_tree_add_item(tree, hf_ttrpc_type, tvb, 8, 1, ENC_BIG_ENDIAN);
    flags_item = proto_tree_add_bitmask(tree, tvb, 9, hf_ttrpc_flags, ett_ttrpc_flags, ttrpc_flags_bits,
                                        ENC_BIG_ENDIAN);
    if (hdr->length > TTRPC_MAX_DATA_LEN)
        expert_add_info_format(pinfo, len_item, &ei_ttrpc_header_bad,
                               "Data length %u exceeds ttrpc's maximum of %u", hdr->length, TTRPC_MAX_DATA_LEN);
    if (!try_val_to_str(hdr->type, ttrpc_type_vals))
        expert_add_info_format(pinfo, type_item, &ei_ttrpc_type_unknown, "Unknown message type %u", hdr->type);
    if (hdr->flags & ~TTRPC_FLAGS_KNOWN)
        expert_add_info_format(pinfo, flags_item, &ei_ttrpc_flags_unknown, "Unknown flags 0x%02x",
                               hdr->flags & ~TTRPC_FLAGS_KNOWN);
}

/* ---- request/response matching ---- */

static ttrpc_conv_t *get_ttrpc_conv(packet_info *pinfo)
{
    conversation_t *conv = find_or_create_conversation(pinfo);
    ttrpc_conv_t *tconv = (ttrpc_conv_t *)conversation_get_proto_data(conv, proto_ttrpc);

    if (!tconv) {
        tconv = wmem_new0(wmem_file_scope(), ttrpc_conv_t);
        tconv->calls = wmem_map_new(wmem_file_scope(), g_direct_hash, g_direct_equal);
        conversation_add_proto_data(conv, proto_ttrpc, tconv);
    }
    return tconv;
}

static ttrpc_call_t *new_call(packet_info *pinfo, const ttrpc_body_t *body)
{
    ttrpc_call_t *call = wmem_new0(wmem_file_scope(), ttrpc_call_t);

    call->req_frame = pinfo->num;
    call->req_time = pinfo->abs_ts;
    call->service = body->service ? wmem_strdup(wmem_file_scope(), (const char *)body->service) : NULL;
    call->method = body->method ? wmem_strdup(wmem_file_scope(), (const char *)body->method) : NULL;
    copy_address_wmem(wmem_file_scope(), &call->client, &pinfo->src);
    call->client_port = pinfo->srcport;
    return call;
}

/* First pass: record the PDU in its stream's call. */
static ttrpc_pdu_info_t *analyze_pdu(packet_info *pinfo, const ttrpc_header_t *hdr, const ttrpc_body_t *body)
{
    ttrpc_conv_t *tconv = get_ttrpc_conv(pinfo);
    ttrpc_pdu_info_t *info = wmem_new0(wmem_file_scope(), ttrpc_pdu_info_t);
    ttrpc_call_t *call = (ttrpc_call_t *)wmem_map_lookup(tconv->calls, GUINT_TO_POINTER(hdr->stream_id));

    switch (hdr->type) {
    case TTRPC_TYPE_REQUEST:
        info->call = new_call(pinfo, body);
        wmem_map_insert(tconv->calls, GUINT_TO_POINTER(hdr->stream_id), info->call);
        break;
    case TTRPC_TYPE_RESPONSE:
        /* A second response on a stream answers nothing. */
        if (call && call->resp_frame == 0) {
            call->resp_frame = pinfo->num;
            info->call = call;
        }
        break;
    default:
        info->call = call;
        break;
    }
    return info;
}

/* Index of this PDU among those dissected in the frame: the same on every pass. */
static uint32_t next_pdu_index(packet_info *pinfo)
{
    uint32_t count = GPOINTER_TO_UINT(p_get_proto_data(pinfo->pool, pinfo, proto_ttrpc, TTRPC_KEY_PDU_COUNT));

    p_set_proto_data(pinfo->pool, pinfo, proto_ttrpc, TTRPC_KEY_PDU_COUNT, GUINT_TO_POINTER(count + 1));
    return count;
}

static const ttrpc_pdu_info_t *get_pdu_info(packet_info *pinfo, uint32_t pdu_index, const ttrpc_header_t *hdr,
                                            const ttrpc_body_t *body)
{
    ttrpc_pdu_info_t *info = (ttrpc_pdu_info_t *)p_get_proto_data(wmem_file_scope(), pinfo, proto_ttrpc, pdu_index);

    if (!info && !PINFO_FD_VISITED(pinfo) && header_valid(hdr)) {
        info = analyze_pdu(pinfo, hdr, body);
        p_add_proto_data(wmem_file_scope(), pinfo, proto_ttrpc, pdu_index, info);
    }
    return info;
}

/* Data from the requester belongs to the request stream, the rest to the response. */
static bool from_client(packet_info *pinfo, const ttrpc_call_t *call)
{
    return pinfo->srcport == call->client_port && addresses_equal(&pinfo->src, &call->client);
}

static void add_call_items(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const ttrpc_header_t *hdr,
                           const ttrpc_call_t *call)
{
    proto_item *ti;
    nstime_t delta;

    if (hdr->type != TTRPC_TYPE_REQUEST) {
        /* The RPC's names, from its request. */
        if (call->service) {
            ti = proto_tree_add_string(tree, hf_ttrpc_service, tvb, 0, 0, call->service);
            proto_item_set_generated(ti);
        }
        if (call->method) {
            ti = proto_tree_add_string(tree, hf_ttrpc_method, tvb, 0, 0, call->method);
            proto_item_set_generated(ti);
        }
    }
    if (hdr->type == TTRPC_TYPE_REQUEST && call->resp_frame) {
        ti = proto_tree_add_uint(tree, hf_ttrpc_response_in, tvb, 0, 0, call->resp_frame);
        proto_item_set_generated(ti);
    } else if (hdr->type == TTRPC_TYPE_RESPONSE) {
        ti = proto_tree_add_uint(tree, hf_ttrpc_response_to, tvb, 0, 0, call->req_frame);
        proto_item_set_generated(ti);
        nstime_delta(&delta, &pinfo->abs_ts, &call->req_time);
        ti = proto_tree_add_time(tree, hf_ttrpc_time, tvb, 0, 0, &delta);
        proto_item_set_generated(ti);
    }
}

/* ---- one PDU ---- */

/* "/service/method", or NULL if the request did not name both. */
static const char *call_path(packet_info *pinfo, const ttrpc_header_t *hdr, const ttrpc_body_t *body,
                             const ttrpc_call_t *call)
{
    const char *service = hdr->type == TTRPC_TYPE_REQUEST ? (const char *)body->service : call ? call->service : NULL;
    const char *method = hdr->type == TTRPC_TYPE_REQUEST ? (const char *)body->method : call ? call->method : NULL;

    if (!service || !method)
        return NULL;
    return wmem_strdup_printf(pinfo->pool, "/%s/%s", service, method);
}

/* Over TCP or vsock, the application's summary replaces the transport's;
 * several PDUs of one frame are listed one after the other. */
static void append_info(packet_info *pinfo, uint32_t pdu_index, const char *text)
{
    if (pdu_index == 0) {
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "ttrpc");
        col_clear(pinfo->cinfo, COL_INFO);
    }
    col_append_sep_str(pinfo->cinfo, COL_INFO, ", ", text);
    col_set_fence(pinfo->cinfo, COL_INFO);
}

/* "Request /grpc.AgentService/CreateContainer (stream 5)", "Response ... status 0 (OK)" */
static void set_columns(packet_info *pinfo, uint32_t pdu_index, const ttrpc_header_t *hdr, const ttrpc_body_t *body,
                        const char *path)
{
    wmem_strbuf_t *buf = wmem_strbuf_new(pinfo->pool, vsock_val_to_str(pinfo->pool, hdr->type, ttrpc_type_vals,
                                                                        "Type %u"));

    if (path)
        wmem_strbuf_append_printf(buf, " %s", path);
    wmem_strbuf_append_printf(buf, " (stream %u)", hdr->stream_id);
    if (hdr->type == TTRPC_TYPE_RESPONSE)
        wmem_strbuf_append_printf(buf, " status %d (%s)", body->status_code,
                                  val_to_str_const(body->status_code, ttrpc_status_code_vals, "Unknown"));
    append_info(pinfo, pdu_index, wmem_strbuf_get_str(buf));
}

/* A message protobuf cannot parse must not hide the PDUs after it. Apart, so
 * that nothing live across the setjmp of TRY can be clobbered. */
static void call_protobuf_guarded(tvbuff_t *msg_tvb, packet_info *pinfo, proto_tree *tree, char *type_info)
{
    TRY {
        call_dissector_with_data(protobuf_handle, msg_tvb, pinfo, tree, type_info);
    }
    CATCH_NONFATAL_ERRORS {
        show_exception(msg_tvb, pinfo, tree, EXCEPT_CODE, GET_MESSAGE);
    }
    ENDTRY;
}

/* The message inside: Wireshark's protobuf dissector finds its type from the
 * gRPC-style "application/grpc,/service/method,request|response" string when
 * .proto files are loaded, and shows wire format otherwise. */
static void call_message_dissector(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const ttrpc_body_t *body,
                                   const char *path, bool is_request)
{
    tvbuff_t *msg_tvb;
    bool writable;

    if (!body->has_payload || !protobuf_handle)
        return;
    msg_tvb = tvb_new_subset_length(tvb, body->payload_offset, body->payload_length);
    char * const type_info = path ? wmem_strdup_printf(pinfo->pool, "application/grpc,%s,%s", path,
                                                       is_request ? "request" : "response")
                                  : NULL;
    /* Our Info summary stays as it is: protobuf would append to it. */
    writable = col_get_writable(pinfo->cinfo, -1);
    col_set_writable(pinfo->cinfo, -1, false);
    call_protobuf_guarded(msg_tvb, pinfo, tree, type_info);
    col_set_writable(pinfo->cinfo, -1, writable);
}

static bool is_request_direction(packet_info *pinfo, const ttrpc_header_t *hdr, const ttrpc_call_t *call)
{
    if (hdr->type == TTRPC_TYPE_REQUEST)
        return true;
    if (hdr->type == TTRPC_TYPE_RESPONSE)
        return false;
    return call ? from_client(pinfo, call) : false;
}

/* One complete PDU; tvb holds exactly its header and data. */
static void dissect_ttrpc_pdu(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    const uint32_t pdu_index = next_pdu_index(pinfo);
    ttrpc_header_t hdr;
    ttrpc_body_t body = { NULL, NULL, false, 0, 0, false, 0 };
    const ttrpc_pdu_info_t *info;
    const ttrpc_call_t *call;
    const char *path;
    proto_item *ttrpc_item;
    proto_tree *ttrpc_tree;

    read_header(tvb, 0, &hdr);
    ttrpc_item = proto_tree_add_item(tree, proto_ttrpc, tvb, 0, -1, ENC_NA);
    ttrpc_tree = proto_item_add_subtree(ttrpc_item, ett_ttrpc);
    add_header(tvb, pinfo, ttrpc_tree, &hdr);
    dissect_body(tvb, pinfo, ttrpc_tree, &hdr, &body);

    info = get_pdu_info(pinfo, pdu_index, &hdr, &body);
    call = info ? info->call : NULL;
    if (call)
        add_call_items(tvb, pinfo, ttrpc_tree, &hdr, call);
    else if (hdr.type == TTRPC_TYPE_RESPONSE)
        expert_add_info_format(pinfo, ttrpc_item, &ei_ttrpc_response_no_request,
                               "Response on stream %u without a request in the capture", hdr.stream_id);

    path = call_path(pinfo, &hdr, &body, call);
    set_columns(pinfo, pdu_index, &hdr, &body, path);
    proto_item_append_text(ttrpc_item, ", %s, Stream %u%s%s",
                           vsock_val_to_str(pinfo->pool, hdr.type, ttrpc_type_vals, "Type %u"), hdr.stream_id,
                           path ? ", " : "", path ? path : "");
    call_message_dissector(tvb, pinfo, ttrpc_tree, &body, path, is_request_direction(pinfo, &hdr, call));
}

/* A header whose length no ttrpc peer accepts: what follows cannot be
 * delimited, so dissection stops here. */
static void dissect_bad_header(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const ttrpc_header_t *hdr)
{
    proto_item *ti = proto_tree_add_item(tree, proto_ttrpc, tvb, 0, -1, ENC_NA);
    proto_tree *ttrpc_tree = proto_item_add_subtree(ti, ett_ttrpc);

    add_header(tvb, pinfo, ttrpc_tree, hdr);
    append_info(pinfo, next_pdu_index(pinfo), "[Malformed header]");
}

/* A PDU this packet does not complete while nobody can reassemble it: its
 * header, if all there, and the bytes. */
static void add_incomplete_pdu(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, uint32_t pdu_len)
{
    const int avail = (int)tvb_captured_length(tvb);
    proto_item *ti = proto_tree_add_item(tree, proto_ttrpc, tvb, 0, -1, ENC_NA);
    proto_tree *ttrpc_tree = proto_item_add_subtree(ti, ett_ttrpc);
    ttrpc_header_t hdr;

    if (pdu_len) {
        read_header(tvb, 0, &hdr);
        add_header(tvb, pinfo, ttrpc_tree, &hdr);
        proto_tree_add_item(ttrpc_tree, hf_ttrpc_fragment, tvb, TTRPC_HDR_LEN, avail - TTRPC_HDR_LEN, ENC_NA);
        expert_add_info_format(pinfo, ti, &ei_ttrpc_pdu_incomplete,
                               "PDU of %u bytes, %d in this packet, and no reassembly", pdu_len, avail);
        append_info(pinfo, next_pdu_index(pinfo),
                    wmem_strdup_printf(pinfo->pool, "[%s (stream %u), %d of %u bytes]",
                                       vsock_val_to_str(pinfo->pool, hdr.type, ttrpc_type_vals, "Type %u"),
                                       hdr.stream_id, avail, pdu_len));
    } else {
        proto_tree_add_item(ttrpc_tree, hf_ttrpc_fragment, tvb, 0, avail, ENC_NA);
        expert_add_info_format(pinfo, ti, &ei_ttrpc_pdu_incomplete,
                               "Header of %d bytes only, and no reassembly", avail);
        append_info(pinfo, next_pdu_index(pinfo), "[Header fragment]");
    }
}

/* Asks the transport for more bytes, as over TCP. */
static int want_more(tvbuff_t *tvb, packet_info *pinfo, int offset, uint32_t missing)
{
    pinfo->desegment_offset = offset;
    pinfo->desegment_len = missing;
    return (int)tvb_captured_length(tvb);
}

/* Is the start of tvb a ttrpc header? Else the next dissector gets it. */
static bool starts_with_ttrpc(tvbuff_t *tvb, packet_info *pinfo)
{
    const int avail = (int)tvb_captured_length(tvb);
    ttrpc_header_t hdr;

    if (avail < TTRPC_HDR_LEN)
        return avail > 0 && pinfo->can_desegment > 0 && header_prefix_plausible(tvb, 0, avail);
    read_header(tvb, 0, &hdr);
    return header_valid(&hdr);
}

/* Stream payload: any number of PDUs, the last one possibly incomplete. */
static int dissect_ttrpc(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    int offset = 0;
    ttrpc_header_t hdr;
    uint32_t pdu_len;

    if (!starts_with_ttrpc(tvb, pinfo))
        return 0;

    while (offset < length) {
        const int avail = length - offset;

        if (avail < TTRPC_HDR_LEN) {
            if (pinfo->can_desegment > 0)
                return want_more(tvb, pinfo, offset, DESEGMENT_ONE_MORE_SEGMENT);
            add_incomplete_pdu(tvb_new_subset_remaining(tvb, offset), pinfo, tree, 0);
            return length;
        }
        read_header(tvb, offset, &hdr);
        if (hdr.length > TTRPC_MAX_DATA_LEN) {
            dissect_bad_header(tvb_new_subset_length(tvb, offset, TTRPC_HDR_LEN), pinfo, tree, &hdr);
            return length;
        }
        pdu_len = TTRPC_HDR_LEN + hdr.length;
        if ((uint32_t)avail < pdu_len) {
            if (pinfo->can_desegment > 0)
                return want_more(tvb, pinfo, offset, pdu_len - (uint32_t)avail);
            add_incomplete_pdu(tvb_new_subset_remaining(tvb, offset), pinfo, tree, pdu_len);
            return length;
        }
        dissect_ttrpc_pdu(tvb_new_subset_length(tvb, offset, (int)pdu_len), pinfo, tree);
        offset += (int)pdu_len;
    }
    return length;
}

void proto_register_ttrpc(void)
{
    static hf_register_info hf[] = {
        { &hf_ttrpc_length,
          { "Data length", "ttrpc.length", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Bytes of data after the 10-byte header", HFILL } },
        { &hf_ttrpc_stream_id,
          { "Stream ID", "ttrpc.stream_id", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Odd for client-initiated streams", HFILL } },
        { &hf_ttrpc_type,
          { "Type", "ttrpc.type", FT_UINT8, BASE_DEC, VALS(ttrpc_type_vals), 0x0, NULL, HFILL } },
        { &hf_ttrpc_flags,
          { "Flags", "ttrpc.flags", FT_UINT8, BASE_HEX, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_flags_remote_closed,
          { "Remote closed", "ttrpc.flags.remote_closed", FT_BOOLEAN, 8, TFS(&tfs_set_notset),
            TTRPC_FLAG_REMOTE_CLOSED, "No more data expected from the sender", HFILL } },
        { &hf_ttrpc_flags_remote_open,
          { "Remote open", "ttrpc.flags.remote_open", FT_BOOLEAN, 8, TFS(&tfs_set_notset),
            TTRPC_FLAG_REMOTE_OPEN, "Non-unary: the sender still sends data", HFILL } },
        { &hf_ttrpc_flags_no_data,
          { "No data", "ttrpc.flags.no_data", FT_BOOLEAN, 8, TFS(&tfs_set_notset),
            TTRPC_FLAG_NO_DATA, NULL, HFILL } },
        { &hf_ttrpc_request,
          { "Request", "ttrpc.request", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_response,
          { "Response", "ttrpc.response", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_service,
          { "Service", "ttrpc.service", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_method,
          { "Method", "ttrpc.method", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_payload,
          { "Payload", "ttrpc.payload", FT_BYTES, BASE_NONE, NULL, 0x0,
            "The RPC's own message, in protobuf", HFILL } },
        { &hf_ttrpc_timeout,
          { "Timeout (ns)", "ttrpc.timeout_nano", FT_INT64, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_metadata,
          { "Metadata", "ttrpc.metadata", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_metadata_key,
          { "Key", "ttrpc.metadata.key", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_metadata_value,
          { "Value", "ttrpc.metadata.value", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_status,
          { "Status", "ttrpc.status", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_status_code,
          { "Code", "ttrpc.status.code", FT_INT32, BASE_DEC, VALS(ttrpc_status_code_vals), 0x0, NULL, HFILL } },
        { &hf_ttrpc_status_message,
          { "Message", "ttrpc.status.message", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_status_details,
          { "Details", "ttrpc.status.details", FT_BYTES, BASE_NONE, NULL, 0x0,
            "A google.protobuf.Any", HFILL } },
        { &hf_ttrpc_unknown_field,
          { "Unknown field", "ttrpc.unknown_field", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_response_in,
          { "Response in", "ttrpc.response_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
            "The response to this request is in this frame", HFILL } },
        { &hf_ttrpc_response_to,
          { "Request in", "ttrpc.response_to", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
            "This is a response to the request in this frame", HFILL } },
        { &hf_ttrpc_time,
          { "Time since request", "ttrpc.time", FT_RELATIVE_TIME, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_ttrpc_fragment,
          { "Incomplete PDU", "ttrpc.fragment", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_ttrpc,
        &ett_ttrpc_flags,
        &ett_ttrpc_request,
        &ett_ttrpc_response,
        &ett_ttrpc_metadata,
        &ett_ttrpc_status,
    };
    static ei_register_info ei[] = {
        { &ei_ttrpc_header_bad,
          { "ttrpc.header.bad", PI_MALFORMED, PI_ERROR, "Malformed ttrpc header", EXPFILL } },
        { &ei_ttrpc_type_unknown,
          { "ttrpc.type.unknown", PI_PROTOCOL, PI_WARN, "Unknown message type", EXPFILL } },
        { &ei_ttrpc_flags_unknown,
          { "ttrpc.flags.unknown", PI_PROTOCOL, PI_WARN, "Unknown flags", EXPFILL } },
        { &ei_ttrpc_pdu_incomplete,
          { "ttrpc.pdu.incomplete", PI_REASSEMBLE, PI_NOTE, "PDU continues beyond this packet", EXPFILL } },
        { &ei_ttrpc_protobuf_bad,
          { "ttrpc.protobuf.bad", PI_MALFORMED, PI_ERROR, "Not protobuf wire format", EXPFILL } },
        { &ei_ttrpc_field_wire_type,
          { "ttrpc.protobuf.wire_type", PI_PROTOCOL, PI_WARN, "Unexpected wire type", EXPFILL } },
        { &ei_ttrpc_response_no_request,
          { "ttrpc.response.no_request", PI_SEQUENCE, PI_NOTE, "Response without a request", EXPFILL } },
        { &ei_ttrpc_status_error,
          { "ttrpc.status.error", PI_RESPONSE_CODE, PI_NOTE, "Error status", EXPFILL } },
    };
    expert_module_t *expert_ttrpc;

    proto_ttrpc = proto_register_protocol("ttrpc (containerd lightweight RPC)", "ttrpc", "ttrpc");
    proto_register_field_array(proto_ttrpc, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_ttrpc = expert_register_protocol(proto_ttrpc);
    expert_register_field_array(expert_ttrpc, ei, array_length(ei));

    ttrpc_handle = register_dissector("ttrpc", dissect_ttrpc, proto_ttrpc);
}

void proto_reg_handoff_ttrpc(void)
{
    /* Preference "ttrpc.vsock.port", also offered in Decode As. */
    dissector_add_uint_range_with_preference("vsock.port", TTRPC_VSOCK_PORTS, ttrpc_handle);
    /* ttrpc relayed over TCP can be chosen with Decode As. */
    dissector_add_for_decode_as("tcp.port", ttrpc_handle);
    protobuf_handle = find_dissector_add_dependency("protobuf", proto_ttrpc);
}
