/* packet-gvtap.c
 * gvisor-tap-vsock's network tunnel over vsock (Podman machine, CodeReady
 * Containers / OpenShift Local, Lima with vz). The VM's forwarder connects
 * to the host (CID 2, port 1024) and writes "POST /connect" as an HTTP/1.1
 * request; gvproxy takes the connection over without answering, and from
 * then on both directions carry Ethernet frames, each preceded by its length
 * in 2 bytes, little-endian (gvisor-tap-vsock's "hyperkit" framing). A
 * "POST /tunnel?ip=A&port=P" request is answered by the 2 bytes "OK", then
 * the connection relays raw TCP to A:P.
 *
 * Sources: github.com/containers/gvisor-tap-vsock, cmd/vm/main_linux.go (the
 * forwarder), pkg/tap/switch.go and protocols.go (gvproxy's side: it writes
 * the length and the frame in separate writes, so separate RW packets),
 * pkg/virtualnetwork (the /connect and /tunnel handlers).
 *
 * What a direction carries is decided on the first pass, where its content
 * starts, and stored as "from this frame and call on"; later passes only
 * read it, so every pass builds the same tree.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/exceptions.h>
#include <epan/expert.h>
#include <epan/proto_data.h>
#include <epan/show_exception.h>
#include <epan/to_str.h>
#include <wsutil/inet_addr.h>
#include <wsutil/strtoi.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-payload.h"

#define GVTAP_LEN_SIZE      2      /* the frame length before each frame */
#define GVTAP_ETH_HDR_LEN   14     /* shorter is not an Ethernet frame */
#define GVTAP_CHECK_LEN     (GVTAP_LEN_SIZE + GVTAP_ETH_HDR_LEN)
#define GVTAP_MAX_HEAD_LEN  8192   /* a longer request head is not the forwarder's */

/* The request paths gvproxy takes a connection over for. */
#define GVTAP_CONNECT_PREFIX "POST /connect"
#define GVTAP_TUNNEL_PREFIX  "POST /tunnel"

void proto_register_gvtap(void);
void proto_reg_handoff_gvtap(void);

/* What a direction carries after its opening (the request, or "OK"). */
enum gvtap_content {
    GVTAP_UNDECIDED = 0,
    GVTAP_FRAMES,        /* length-prefixed Ethernet frames */
    GVTAP_RAW,           /* /tunnel: the relayed TCP stream */
    GVTAP_HTTP_ANSWER,   /* the host answered the request: no take-over */
    GVTAP_NOT_FRAMES     /* bytes that are not length-prefixed frames */
};

enum gvtap_direction {
    GVTAP_FROM_VM = 0,
    GVTAP_TO_VM   = 1
};

static const value_string gvtap_direction_vals[] = {
    { GVTAP_FROM_VM, "VM to host" },
    { GVTAP_TO_VM,   "Host to VM" },
    { 0, NULL }
};

/* A point in the capture: the Nth call of this dissector in a frame. */
typedef struct gvtap_point {
    uint32_t frame;           /* 0: none */
    uint32_t call;
} gvtap_point_t;

/* One direction of a connection (by vsock direction). */
typedef struct gvtap_flow {
    gvtap_point_t opening;    /* the call that starts with the opening */
    uint32_t opening_len;     /* its bytes: the request head, or "OK" */
    gvtap_point_t content_from; /* the call where the content was recognised */
    uint8_t content;          /* enum gvtap_content */
    uint32_t frames;          /* frames seen on the first pass */
    uint32_t unfinished;      /* first pass: a frame not yet complete starts in this frame */
} gvtap_flow_t;

/* One gvisor-tap-vsock connection (wmem_file_scope). */
typedef struct gvtap_conv {
    uint32_t request_frame;   /* 0: no request seen (mid-connection, Decode As) */
    uint8_t vm_direction;     /* vsock direction of the side that sent the request */
    bool tunnel;              /* /tunnel rather than /connect */
    bool has_ip;
    bool has_port;
    ws_in4_addr ip;           /* /tunnel's target */
    uint16_t port;
    gvtap_flow_t flow[2];
} gvtap_conv_t;

/* What one call works with. */
typedef struct gvtap_call {
    tvbuff_t *tvb;
    packet_info *pinfo;
    proto_tree *tree;
    gvtap_conv_t *conv;
    gvtap_flow_t *flow;
    uint8_t direction;        /* vsock direction of this packet */
    gvtap_point_t here;
    bool may_decide;          /* first pass, or no stored state */
} gvtap_call_t;

/* Per packet (pinfo->pool): calls and items so far, for the call index and
 * the Info column. */
typedef struct gvtap_packet {
    uint32_t calls;
    uint32_t items;
} gvtap_packet_t;

/* Result of checking whether bytes start with a frame. */
enum gvtap_check {
    GVTAP_CHECK_NO,
    GVTAP_CHECK_YES,
    GVTAP_CHECK_MORE          /* not enough bytes to tell */
};

static int proto_gvtap = -1;

static int hf_gvtap_request_line = -1;
static int hf_gvtap_method = -1;
static int hf_gvtap_path = -1;
static int hf_gvtap_version = -1;
static int hf_gvtap_header = -1;
static int hf_gvtap_tunnel_ip = -1;
static int hf_gvtap_tunnel_port = -1;
static int hf_gvtap_answer = -1;
static int hf_gvtap_frame_len = -1;
static int hf_gvtap_data = -1;
static int hf_gvtap_direction = -1;
static int hf_gvtap_request_in = -1;

static int ett_gvtap = -1;
static int ett_gvtap_request = -1;

static expert_field ei_gvtap_request_incomplete = EI_INIT;
static expert_field ei_gvtap_request_no_frames = EI_INIT;
static expert_field ei_gvtap_tunnel_target_bad = EI_INIT;
static expert_field ei_gvtap_answer_http = EI_INIT;
static expert_field ei_gvtap_answer_not_ok = EI_INIT;
static expert_field ei_gvtap_frame_len_zero = EI_INIT;
static expert_field ei_gvtap_frame_len_short = EI_INIT;
static expert_field ei_gvtap_frame_incomplete = EI_INIT;
static expert_field ei_gvtap_frame_unfinished = EI_INIT;
static expert_field ei_gvtap_not_frames = EI_INIT;
static expert_field ei_gvtap_unsynchronized = EI_INIT;

static dissector_handle_t gvtap_handle;
static dissector_handle_t eth_handle;
static dissector_handle_t http_handle;
static dissector_table_t tcp_port_table;
static heur_dtbl_entry_t *gvtap_heur_entry;

/* vsock stream -> gvtap_conv_t, emptied with each capture file. */
static wmem_map_t *gvtap_convs;

/* ---- state ---- */

static bool point_before(gvtap_point_t a, gvtap_point_t b)
{
    return a.frame < b.frame || (a.frame == b.frame && a.call < b.call);
}

static bool point_equal(gvtap_point_t a, gvtap_point_t b)
{
    return a.frame == b.frame && a.call == b.call;
}

static gvtap_packet_t *packet_record(packet_info *pinfo)
{
    gvtap_packet_t *rec = (gvtap_packet_t *)p_get_proto_data(pinfo->pool, pinfo, proto_gvtap, 0);

    if (!rec) {
        rec = wmem_new0(pinfo->pool, gvtap_packet_t);
        p_add_proto_data(pinfo->pool, pinfo, proto_gvtap, 0, rec);
    }
    return rec;
}

/* The connection's record: stored with vsock's connection tracking; without
 * it (or for a connection the first pass never gave us), a blank one that
 * lives for this call only. */
static void find_conv(gvtap_call_t *call)
{
    const vsock_conv_packet_t *cp = vsock_conversation_packet(call->pinfo);

    call->conv = NULL;
    call->direction = 0;
    call->may_decide = !PINFO_FD_VISITED(call->pinfo);
    if (cp) {
        void *key = GUINT_TO_POINTER(vsock_conversation_stream(cp->conv));

        call->direction = cp->direction;
        call->conv = (gvtap_conv_t *)wmem_map_lookup(gvtap_convs, key);
        if (!call->conv && call->may_decide) {
            call->conv = wmem_new0(wmem_file_scope(), gvtap_conv_t);
            wmem_map_insert(gvtap_convs, key, call->conv);
        }
    }
    if (!call->conv) {
        call->conv = wmem_new0(call->pinfo->pool, gvtap_conv_t);
        call->may_decide = true;
    }
    call->flow = &call->conv->flow[call->direction];
}

static bool has_request(const gvtap_call_t *call)
{
    return call->conv->request_frame != 0;
}

static bool from_vm(const gvtap_call_t *call)
{
    return call->direction == call->conv->vm_direction;
}

/* ---- columns and common items ---- */

/* Each item of a packet (request, frame, data) after the first is appended
 * to the Info column; inner protocols write behind a fence. The first one
 * replaces vsock's columns, unless handed to a dissector that sets them
 * (or asks for more bytes, and vsock's stay). */
static void start_item(gvtap_call_t *call, bool own_columns)
{
    gvtap_packet_t *rec = packet_record(call->pinfo);

    if (rec->items++ == 0) {
        if (own_columns) {
            col_set_str(call->pinfo->cinfo, COL_PROTOCOL, "gvisor-tap-vsock");
            col_clear(call->pinfo->cinfo, COL_INFO);
        }
    } else {
        col_append_str(call->pinfo->cinfo, COL_INFO, ", ");
        col_set_fence(call->pinfo->cinfo, COL_INFO);
    }
}

/* The protocol item of one piece, with the tunnel's request and direction. */
static proto_tree *add_gvtap_item(gvtap_call_t *call, int offset, int length, proto_item **item_out)
{
    proto_item *ti = proto_tree_add_item(call->tree, proto_gvtap, call->tvb, offset, length, ENC_NA);
    proto_tree *subtree = proto_item_add_subtree(ti, ett_gvtap);

    if (has_request(call)) {
        proto_item *gen = proto_tree_add_uint(subtree, hf_gvtap_direction, call->tvb, offset, 0,
                                              from_vm(call) ? GVTAP_FROM_VM : GVTAP_TO_VM);
        proto_item_set_generated(gen);
        if (call->conv->request_frame != call->pinfo->num) {
            gen = proto_tree_add_uint(subtree, hf_gvtap_request_in, call->tvb, offset, 0,
                                      call->conv->request_frame);
            proto_item_set_generated(gen);
        }
    }
    if (item_out)
        *item_out = ti;
    return subtree;
}

/* Bytes that are no frame: shown as they are. */
static proto_item *add_data(gvtap_call_t *call, int offset, const char *what)
{
    proto_item *ti;
    proto_tree *subtree = add_gvtap_item(call, offset, -1, &ti);

    start_item(call, true);
    proto_tree_add_item(subtree, hf_gvtap_data, call->tvb, offset, -1, ENC_NA);
    proto_item_append_text(ti, ", %s", what);
    col_append_fstr(call->pinfo->cinfo, COL_INFO, "[%s, %d bytes]", what,
                    tvb_reported_length_remaining(call->tvb, offset));
    return ti;
}

/* Asks the transport for more bytes, as over TCP. */
static int want_more(gvtap_call_t *call, int offset, uint32_t missing)
{
    call->pinfo->desegment_offset = offset;
    call->pinfo->desegment_len = missing;
    return (int)tvb_captured_length(call->tvb);
}

static bool can_desegment(const gvtap_call_t *call)
{
    return call->pinfo->can_desegment > 0;
}

/* ---- the request ---- */

static bool starts_with(tvbuff_t *tvb, int offset, const char *text)
{
    return tvb_strneql(tvb, offset, text, strlen(text)) == 0;
}

/* "POST /connect" or "POST /tunnel", then the end of the path or its query. */
static bool starts_with_request(tvbuff_t *tvb)
{
    int after;

    if (starts_with(tvb, 0, GVTAP_CONNECT_PREFIX))
        after = (int)strlen(GVTAP_CONNECT_PREFIX);
    else if (starts_with(tvb, 0, GVTAP_TUNNEL_PREFIX))
        after = (int)strlen(GVTAP_TUNNEL_PREFIX);
    else
        return false;
    return starts_with(tvb, after, " ") || starts_with(tvb, after, "?");
}

static bool is_tunnel_request(tvbuff_t *tvb)
{
    return starts_with(tvb, 0, GVTAP_TUNNEL_PREFIX);
}

/* Length of the request head (up to its empty line); 0 while it may still
 * come, -1 when it is too long to be the forwarder's. */
static int request_head_len(tvbuff_t *tvb)
{
    int offset = 0;
    int next;

    while (offset <= GVTAP_MAX_HEAD_LEN) {
        int linelen = tvb_find_line_end(tvb, offset, -1, &next, true);

        if (linelen < 0)
            return tvb_reported_length(tvb) > GVTAP_MAX_HEAD_LEN ? -1 : 0;
        if (linelen == 0)
            return next;
        offset = next;
    }
    return -1;
}

/* Index of the first byte c in bytes[from, to), or to. */
static int find_byte(const uint8_t *bytes, int from, int to, uint8_t c)
{
    while (from < to && bytes[from] != c)
        from++;
    return from;
}

/* /tunnel's query: the first "ip" and "port" parameters, as gvproxy reads them. */
static void dissect_tunnel_query(gvtap_call_t *call, proto_tree *tree, proto_item *path_item,
                                 const uint8_t *line, int query, int end)
{
    packet_info *pinfo = call->pinfo;
    gvtap_conv_t *conv = call->conv;
    bool seen_ip = false, seen_port = false;
    int param = query;

    while (param < end) {
        const int param_end = find_byte(line, param, end, '&');
        const int eq = find_byte(line, param, param_end, '=');
        const int value_len = eq < param_end ? param_end - eq - 1 : 0;
        const char *key = (const char *)tvb_get_string_enc(pinfo->pool, call->tvb, param, eq - param, ENC_ASCII);
        const char *value = value_len > 0 ? (const char *)tvb_get_string_enc(pinfo->pool, call->tvb, eq + 1,
                                                                              value_len, ENC_ASCII)
                                          : "";

        if (!seen_ip && strcmp(key, "ip") == 0) {
            ws_in4_addr addr;

            seen_ip = true;
            if (ws_inet_pton4(value, &addr)) {
                proto_tree_add_ipv4(tree, hf_gvtap_tunnel_ip, call->tvb, eq + 1, value_len, addr);
                conv->has_ip = true;
                conv->ip = addr;
            } else {
                expert_add_info_format(pinfo, path_item, &ei_gvtap_tunnel_target_bad,
                                       "Tunnel ip \"%s\" is not an IPv4 address", value);
            }
        } else if (!seen_port && strcmp(key, "port") == 0) {
            uint16_t port;

            seen_port = true;
            if (ws_strtou16(value, NULL, &port)) {
                proto_tree_add_uint(tree, hf_gvtap_tunnel_port, call->tvb, eq + 1, value_len, port);
                conv->has_port = true;
                conv->port = port;
            } else {
                expert_add_info_format(pinfo, path_item, &ei_gvtap_tunnel_target_bad,
                                       "Tunnel port \"%s\" is not a port number", value);
            }
        }
        param = param_end + 1;
    }
    if (!seen_ip || !seen_port)
        expert_add_info_format(pinfo, path_item, &ei_gvtap_tunnel_target_bad,
                               "Tunnel request without %s: gvproxy refuses it", seen_ip ? "port" : "ip");
}

/* "METHOD PATH VERSION": its parts, and /tunnel's target. */
static void dissect_request_line(gvtap_call_t *call, proto_tree *tree, int linelen)
{
    packet_info *pinfo = call->pinfo;
    const uint8_t *line = (const uint8_t *)tvb_memdup(pinfo->pool, call->tvb, 0, linelen);
    const int method_end = find_byte(line, 0, linelen, ' ');
    const int path_start = MIN(method_end + 1, linelen);
    const int path_end = find_byte(line, path_start, linelen, ' ');
    const int query = find_byte(line, path_start, path_end, '?');
    proto_item *path_item;

    proto_tree_add_item(tree, hf_gvtap_method, call->tvb, 0, method_end, ENC_ASCII);
    path_item = proto_tree_add_item(tree, hf_gvtap_path, call->tvb, path_start, path_end - path_start, ENC_ASCII);
    if (path_end < linelen)
        proto_tree_add_item(tree, hf_gvtap_version, call->tvb, path_end + 1, linelen - path_end - 1, ENC_ASCII);
    if (call->conv->tunnel)
        dissect_tunnel_query(call, tree, path_item, line, MIN(query + 1, path_end), path_end);
}

/* The request head: the request line and the header lines. */
static void dissect_request(gvtap_call_t *call, int head_len)
{
    packet_info *pinfo = call->pinfo;
    proto_item *ti, *line_item;
    proto_tree *subtree, *line_tree;
    int next;
    const int linelen = tvb_find_line_end(call->tvb, 0, head_len, &next, false);
    const char *line = (const char *)tvb_get_string_enc(pinfo->pool, call->tvb, 0, linelen, ENC_ASCII);
    int offset;

    start_item(call, true);
    subtree = add_gvtap_item(call, 0, head_len, &ti);
    proto_item_append_text(ti, ", %s", line);
    col_add_str(pinfo->cinfo, COL_INFO, line);

    line_item = proto_tree_add_item(subtree, hf_gvtap_request_line, call->tvb, 0, linelen, ENC_ASCII);
    line_tree = proto_item_add_subtree(line_item, ett_gvtap_request);
    dissect_request_line(call, line_tree, linelen);

    for (offset = next; offset < head_len; offset = next) {
        const int len = tvb_find_line_end(call->tvb, offset, head_len - offset, &next, false);

        if (len <= 0)
            break;
        proto_tree_add_item(subtree, hf_gvtap_header, call->tvb, offset, len, ENC_ASCII);
    }

    /* Only known once every packet was seen (two passes, or the GUI). */
    if (PINFO_FD_VISITED(pinfo) && !call->conv->tunnel &&
        call->conv->flow[0].frames == 0 && call->conv->flow[1].frames == 0)
        expert_add_info(pinfo, ti, &ei_gvtap_request_no_frames);
    if (PINFO_FD_VISITED(pinfo)) {
        for (uint8_t direction = 0; direction < 2; direction++) {
            const uint32_t unfinished = call->conv->flow[direction].unfinished;

            if (unfinished)
                expert_add_info_format(pinfo, ti, &ei_gvtap_frame_unfinished,
                                       "%s: the stream ends inside a frame that starts in frame %u",
                                       direction == call->direction ? "VM to host" : "Host to VM", unfinished);
        }
    }
}

/* A request head that the capture cuts and nobody can reassemble. */
static int dissect_request_fragment(gvtap_call_t *call)
{
    proto_item *ti;

    start_item(call, true);
    add_gvtap_item(call, 0, -1, &ti);
    proto_tree_add_item(proto_item_get_subtree(ti), hf_gvtap_data, call->tvb, 0, -1, ENC_NA);
    expert_add_info(call->pinfo, ti, &ei_gvtap_request_incomplete);
    col_set_str(call->pinfo->cinfo, COL_INFO, "[Request fragment]");
    return (int)tvb_captured_length(call->tvb);
}

/* /tunnel's "OK". */
static void dissect_answer(gvtap_call_t *call)
{
    proto_item *ti;
    proto_tree *subtree;
    const gvtap_conv_t *conv = call->conv;

    start_item(call, true);
    subtree = add_gvtap_item(call, 0, GVTAP_LEN_SIZE, &ti);
    proto_tree_add_item(subtree, hf_gvtap_answer, call->tvb, 0, GVTAP_LEN_SIZE, ENC_ASCII);
    proto_item_append_text(ti, ", OK");
    if (conv->has_ip && conv->has_port) {
        address target;

        set_address(&target, AT_IPv4, 4, &conv->ip);
        col_add_fstr(call->pinfo->cinfo, COL_INFO, "OK (tunnel to %s:%u)",
                     address_to_str(call->pinfo->pool, &target), conv->port);
    } else
        col_set_str(call->pinfo->cinfo, COL_INFO, "OK");
}

/* ---- frames ---- */

static bool is_printable(uint8_t c)
{
    return c >= 0x20 && c < 0x7f;
}

/* Is the frame header at offset plausible: a length that fits an Ethernet
 * header and, if present, a type field that is a type or an 802.3 length,
 * not text? */
static enum gvtap_check check_frame_header(tvbuff_t *tvb, int offset)
{
    const int avail = tvb_reported_length_remaining(tvb, offset);
    uint32_t type;

    if (avail < GVTAP_LEN_SIZE)
        return GVTAP_CHECK_MORE;
    if (tvb_get_letohs(tvb, offset) < GVTAP_ETH_HDR_LEN)
        return GVTAP_CHECK_NO;
    if (avail < GVTAP_CHECK_LEN)
        return GVTAP_CHECK_MORE;
    type = tvb_get_ntohs(tvb, offset + GVTAP_LEN_SIZE + 12);
    if ((type > 1500 && type < 0x0600) || (is_printable((uint8_t)(type >> 8)) && is_printable((uint8_t)type)))
        return GVTAP_CHECK_NO;
    return GVTAP_CHECK_YES;
}

/* Where the connection's start is unknown: does a frame start at offset?
 * The tunnel's ends write whole frames (the forwarder a length and its frame
 * at once, gvproxy the length, then the frame), so a payload that starts
 * with a frame is a length alone, or plausible frames that end exactly with
 * it. */
static bool in_sync(tvbuff_t *tvb, int offset)
{
    const int end = (int)tvb_reported_length(tvb);

    if (end - offset == GVTAP_LEN_SIZE)
        return tvb_get_letohs(tvb, offset) >= GVTAP_ETH_HDR_LEN;
    while (offset < end) {
        if (check_frame_header(tvb, offset) != GVTAP_CHECK_YES)
            return false;
        offset += GVTAP_LEN_SIZE + tvb_get_letohs(tvb, offset);
    }
    return offset == end;
}

/* What inner dissectors change in pinfo that the vsock layer below still
 * needs (its reassembly keys on the addresses and ports). */
typedef struct gvtap_saved_pinfo {
    address src, dst, net_src, net_dst, dl_src, dl_dst;
    port_type ptype;
    uint32_t srcport, destport;
    uint16_t can_desegment;
    int desegment_offset;
    uint32_t desegment_len;
    uint16_t want_pdu_tracking;
    uint32_t bytes_until_next_pdu;
    bool fragmented;
    bool info_writable;
} gvtap_saved_pinfo_t;

static void save_pinfo(packet_info *pinfo, gvtap_saved_pinfo_t *saved)
{
    copy_address_shallow(&saved->src, &pinfo->src);
    copy_address_shallow(&saved->dst, &pinfo->dst);
    copy_address_shallow(&saved->net_src, &pinfo->net_src);
    copy_address_shallow(&saved->net_dst, &pinfo->net_dst);
    copy_address_shallow(&saved->dl_src, &pinfo->dl_src);
    copy_address_shallow(&saved->dl_dst, &pinfo->dl_dst);
    saved->ptype = pinfo->ptype;
    saved->srcport = pinfo->srcport;
    saved->destport = pinfo->destport;
    saved->can_desegment = pinfo->can_desegment;
    saved->desegment_offset = pinfo->desegment_offset;
    saved->desegment_len = pinfo->desegment_len;
    saved->want_pdu_tracking = pinfo->want_pdu_tracking;
    saved->bytes_until_next_pdu = pinfo->bytes_until_next_pdu;
    saved->fragmented = pinfo->fragmented;
    saved->info_writable = col_get_writable(pinfo->cinfo, COL_INFO);
}

static void restore_pinfo(packet_info *pinfo, const gvtap_saved_pinfo_t *saved)
{
    copy_address_shallow(&pinfo->src, &saved->src);
    copy_address_shallow(&pinfo->dst, &saved->dst);
    copy_address_shallow(&pinfo->net_src, &saved->net_src);
    copy_address_shallow(&pinfo->net_dst, &saved->net_dst);
    copy_address_shallow(&pinfo->dl_src, &saved->dl_src);
    copy_address_shallow(&pinfo->dl_dst, &saved->dl_dst);
    pinfo->ptype = saved->ptype;
    pinfo->srcport = saved->srcport;
    pinfo->destport = saved->destport;
    pinfo->can_desegment = saved->can_desegment;
    pinfo->desegment_offset = saved->desegment_offset;
    pinfo->desegment_len = saved->desegment_len;
    pinfo->want_pdu_tracking = saved->want_pdu_tracking;
    pinfo->bytes_until_next_pdu = saved->bytes_until_next_pdu;
    pinfo->fragmented = saved->fragmented;
    col_set_writable(pinfo->cinfo, COL_INFO, saved->info_writable);
}

/* A frame Ethernet cannot parse must not hide the frames after it. Apart,
 * so that nothing live across the setjmp of TRY can be clobbered. */
static void call_eth_guarded(tvbuff_t *frame_tvb, packet_info *pinfo, proto_tree *tree)
{
    TRY {
        call_dissector(eth_handle, frame_tvb, pinfo, tree);
    }
    CATCH_NONFATAL_ERRORS {
        show_exception(frame_tvb, pinfo, tree, EXCEPT_CODE, GET_MESSAGE);
    }
    ENDTRY;
}

/* One length-prefixed frame, all of it in tvb. */
static void dissect_frame(gvtap_call_t *call, int offset, uint32_t len)
{
    packet_info *pinfo = call->pinfo;
    proto_item *ti, *len_item;
    proto_tree *subtree;
    gvtap_saved_pinfo_t saved;

    start_item(call, true);
    subtree = add_gvtap_item(call, offset, GVTAP_LEN_SIZE + (int)len, &ti);
    len_item = proto_tree_add_item(subtree, hf_gvtap_frame_len, call->tvb, offset, GVTAP_LEN_SIZE, ENC_LITTLE_ENDIAN);
    proto_item_append_text(ti, ", Frame length %u", len);
    if (call->may_decide)
        call->flow->frames++;
    if (len < GVTAP_ETH_HDR_LEN) {
        proto_tree_add_item(subtree, hf_gvtap_data, call->tvb, offset + GVTAP_LEN_SIZE, (int)len, ENC_NA);
        expert_add_info(pinfo, len_item, &ei_gvtap_frame_len_short);
        col_append_fstr(pinfo->cinfo, COL_INFO, "[Frame of %u bytes]", len);
        return;
    }
    save_pinfo(pinfo, &saved);
    call_eth_guarded(tvb_new_subset_length(call->tvb, offset + GVTAP_LEN_SIZE, (int)len), pinfo, call->tree);
    restore_pinfo(pinfo, &saved);
}

/* A frame the packet cuts: the transport reassembles it. Remembered until
 * it completes, for the stream that ends inside one. */
static int want_more_frame(gvtap_call_t *call, int offset, uint32_t missing)
{
    if (call->may_decide)
        call->flow->unfinished = call->pinfo->num;
    return want_more(call, offset, missing);
}

/* Frames from offset to the end; the transport reassembles a frame that the
 * packet cuts. */
static int dissect_frames(gvtap_call_t *call, int offset)
{
    packet_info *pinfo = call->pinfo;
    const int length = (int)tvb_reported_length(call->tvb);

    while (offset < length) {
        const int avail = length - offset;
        proto_item *ti;
        uint32_t len;

        if (avail < GVTAP_LEN_SIZE) {
            if (can_desegment(call))
                return want_more_frame(call, offset, GVTAP_LEN_SIZE - avail);
            ti = add_data(call, offset, "Frame length cut");
            expert_add_info(pinfo, ti, &ei_gvtap_frame_incomplete);
            return length;
        }
        len = tvb_get_letohs(call->tvb, offset);
        if (len == 0) {
            proto_tree *subtree;

            start_item(call, true);
            subtree = add_gvtap_item(call, offset, GVTAP_LEN_SIZE, &ti);
            ti = proto_tree_add_item(subtree, hf_gvtap_frame_len, call->tvb, offset, GVTAP_LEN_SIZE,
                                     ENC_LITTLE_ENDIAN);
            expert_add_info(pinfo, ti, &ei_gvtap_frame_len_zero);
            col_append_str(pinfo->cinfo, COL_INFO, "[Frame length 0]");
            offset += GVTAP_LEN_SIZE;
            continue;
        }
        if ((uint32_t)avail < GVTAP_LEN_SIZE + len) {
            if (can_desegment(call))
                return want_more_frame(call, offset, GVTAP_LEN_SIZE + len - (uint32_t)avail);
            ti = add_data(call, offset, "Frame cut");
            proto_tree_add_item(proto_item_get_subtree(ti), hf_gvtap_frame_len, call->tvb, offset,
                                GVTAP_LEN_SIZE, ENC_LITTLE_ENDIAN);
            expert_add_info_format(pinfo, ti, &ei_gvtap_frame_incomplete,
                                   "Frame of %u bytes, %d in this packet, and no reassembly", len,
                                   avail - GVTAP_LEN_SIZE);
            return length;
        }
        dissect_frame(call, offset, len);
        offset += GVTAP_LEN_SIZE + (int)len;
    }
    if (call->may_decide)
        call->flow->unfinished = 0;
    return length;
}

/* ---- other content ---- */

/* Hands bytes on as a transport would: the dissector may ask for more. */
static int call_transport_style(gvtap_call_t *call, int offset, dissector_handle_t handle)
{
    packet_info *pinfo = call->pinfo;
    const uint16_t saved_can_desegment = pinfo->can_desegment;
    int consumed;

    /* As TCP does: the dissector right above us may desegment. */
    if (saved_can_desegment > 0)
        pinfo->can_desegment = 2;
    pinfo->desegment_offset = 0;
    pinfo->desegment_len = 0;
    consumed = call_dissector_only(handle, tvb_new_subset_remaining(call->tvb, offset), pinfo, call->tree, NULL);
    pinfo->can_desegment = saved_can_desegment;
    if (pinfo->desegment_len != 0)
        pinfo->desegment_offset += offset;
    return consumed;
}

/* Bytes handed to another dissector, or shown as data if it refuses them. */
static void dissect_handed_on(gvtap_call_t *call, int offset, dissector_handle_t handle, const char *what,
                              expert_field *ei)
{
    proto_item *ti;

    start_item(call, false);
    add_gvtap_item(call, offset, -1, &ti);
    proto_item_append_text(ti, ", %s", what);
    if (ei)
        expert_add_info(call->pinfo, ti, ei);
    if (call_transport_style(call, offset, handle) <= 0)
        proto_tree_add_item(proto_item_get_subtree(ti), hf_gvtap_data, call->tvb, offset, -1, ENC_NA);
}

/* /tunnel: raw TCP to the target, for the dissector of its port. */
static int dissect_raw(gvtap_call_t *call, int offset)
{
    const gvtap_conv_t *conv = call->conv;
    dissector_handle_t handle = conv->has_port ? dissector_get_uint_handle(tcp_port_table, conv->port) : NULL;

    if (handle)
        dissect_handed_on(call, offset, handle, "Tunnel data", NULL);
    else
        add_data(call, offset, "Tunnel data");
    return (int)tvb_captured_length(call->tvb);
}

static int dissect_http_answer(gvtap_call_t *call, int offset, bool first)
{
    if (http_handle)
        dissect_handed_on(call, offset, http_handle, "HTTP answer", first ? &ei_gvtap_answer_http : NULL);
    else
        add_data(call, offset, "HTTP answer");
    return (int)tvb_captured_length(call->tvb);
}

/* ---- deciding what a direction carries (first pass) ---- */

static void set_content(gvtap_call_t *call, enum gvtap_content content)
{
    call->flow->content = (uint8_t)content;
    call->flow->content_from = call->here;
}

/* The opening of a direction, if this call starts with one: the request of
 * the side that connected, /tunnel's "OK" from the other. Returns false
 * when it asked for more bytes. */
static bool decide_opening(gvtap_call_t *call, int *result)
{
    gvtap_conv_t *conv = call->conv;
    gvtap_flow_t *flow = call->flow;

    if (flow->opening.frame || flow->content != GVTAP_UNDECIDED)
        return true;
    if (!has_request(call) && starts_with_request(call->tvb)) {
        const int head_len = request_head_len(call->tvb);

        if (head_len == 0 && can_desegment(call)) {
            *result = want_more(call, 0, DESEGMENT_ONE_MORE_SEGMENT);
            return false;
        }
        if (head_len <= 0) {
            *result = dissect_request_fragment(call);
            return false;
        }
        conv->request_frame = call->pinfo->num;
        conv->vm_direction = call->direction;
        conv->tunnel = is_tunnel_request(call->tvb);
        flow->opening = call->here;
        flow->opening_len = (uint32_t)head_len;
        return true;
    }
    if (has_request(call) && conv->tunnel && !from_vm(call)) {
        const int avail = (int)tvb_reported_length(call->tvb);

        if (avail < GVTAP_LEN_SIZE && starts_with(call->tvb, 0, "O") && can_desegment(call)) {
            *result = want_more(call, 0, GVTAP_LEN_SIZE - avail);
            return false;
        }
        if (starts_with(call->tvb, 0, "OK")) {
            flow->opening = call->here;
            flow->opening_len = GVTAP_LEN_SIZE;
        }
    }
    return true;
}

/* What the bytes from offset on are, where the direction's content starts.
 * Returns false when it asked for more bytes. */
static bool decide_content(gvtap_call_t *call, int offset, int *result)
{
    gvtap_conv_t *conv = call->conv;

    if (call->flow->content != GVTAP_UNDECIDED || offset >= (int)tvb_reported_length(call->tvb))
        return true;
    if (has_request(call) && !from_vm(call) && starts_with(call->tvb, offset, "HTTP/1.")) {
        set_content(call, GVTAP_HTTP_ANSWER);
        return true;
    }
    if (has_request(call) && conv->tunnel) {
        set_content(call, call->flow->opening.frame ? GVTAP_RAW : GVTAP_NOT_FRAMES);
        return true;
    }
    if (!has_request(call)) {
        /* Mid-connection: try again at the next payload until in sync. */
        if (in_sync(call->tvb, offset))
            set_content(call, GVTAP_FRAMES);
        return true;
    }
    switch (check_frame_header(call->tvb, offset)) {
    case GVTAP_CHECK_YES:
        set_content(call, GVTAP_FRAMES);
        break;
    case GVTAP_CHECK_MORE:
        if (can_desegment(call)) {
            /* The whole first frame once its length is known: asking for
             * less would leave its end to the next packet. */
            const int avail = tvb_reported_length_remaining(call->tvb, offset);
            const uint32_t missing = avail < GVTAP_LEN_SIZE
                                         ? (uint32_t)(GVTAP_LEN_SIZE - avail)
                                         : GVTAP_LEN_SIZE + tvb_get_letohs(call->tvb, offset) - (uint32_t)avail;

            *result = want_more(call, offset, missing);
            return false;
        }
        set_content(call, GVTAP_FRAMES);
        break;
    case GVTAP_CHECK_NO:
        set_content(call, GVTAP_NOT_FRAMES);
        break;
    }
    return true;
}

/* ---- the dissector ---- */

static int dissect_content(gvtap_call_t *call, int offset)
{
    const gvtap_flow_t *flow = call->flow;
    const bool first = point_equal(call->here, flow->content_from);
    proto_item *ti;

    if (offset >= (int)tvb_reported_length(call->tvb))
        return offset;
    if (flow->content == GVTAP_UNDECIDED || point_before(call->here, flow->content_from)) {
        ti = add_data(call, offset, "Not in sync");
        expert_add_info(call->pinfo, ti, &ei_gvtap_unsynchronized);
        return (int)tvb_captured_length(call->tvb);
    }
    switch (flow->content) {
    case GVTAP_FRAMES:
        return dissect_frames(call, offset);
    case GVTAP_RAW:
        return dissect_raw(call, offset);
    case GVTAP_HTTP_ANSWER:
        return dissect_http_answer(call, offset, first);
    default:
        ti = add_data(call, offset, "Not frames");
        if (first)
            expert_add_info(call->pinfo, ti,
                            call->conv->tunnel && !from_vm(call) ? &ei_gvtap_answer_not_ok : &ei_gvtap_not_frames);
        return (int)tvb_captured_length(call->tvb);
    }
}

static int dissect_gvtap(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    gvtap_call_t call;
    int offset = 0;
    int result;

    call.tvb = tvb;
    call.pinfo = pinfo;
    call.tree = tree;
    call.here.frame = pinfo->num;
    call.here.call = packet_record(pinfo)->calls++;
    find_conv(&call);

    if (call.may_decide) {
        if (!decide_opening(&call, &result))
            return result;
    }
    if (call.flow->opening.frame && point_equal(call.here, call.flow->opening)) {
        offset = (int)call.flow->opening_len;
        if (from_vm(&call))
            dissect_request(&call, offset);
        else
            dissect_answer(&call);
    }
    if (call.may_decide) {
        if (!decide_content(&call, offset, &result))
            return result;
    }
    result = dissect_content(&call, offset);
    return MAX(result, offset);
}

/* For vsock's HTTP heuristic: the request is ours while our heuristic is on. */
static bool gvtap_claims_request(tvbuff_t *tvb)
{
    return gvtap_heur_entry && gvtap_heur_entry->enabled && proto_is_protocol_enabled(gvtap_heur_entry->protocol) &&
           starts_with_request(tvb);
}

/* The forwarder's request opens the connection: the rest of it, both
 * directions, comes to us first. */
static vsock_cb_bool dissect_gvtap_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    if (!starts_with_request(tvb))
        return false;
    vsock_set_connection_dissector(pinfo, gvtap_handle);
    dissect_gvtap(tvb, pinfo, tree, data);
    return true;
}

void proto_register_gvtap(void)
{
    static hf_register_info hf[] = {
        { &hf_gvtap_request_line,
          { "Request line", "gvtap.request_line", FT_STRING, BASE_NONE, NULL, 0x0,
            "The forwarder's HTTP/1.1 request that opens the connection", HFILL } },
        { &hf_gvtap_method,
          { "Method", "gvtap.method", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_gvtap_path,
          { "Path", "gvtap.path", FT_STRING, BASE_NONE, NULL, 0x0,
            "/connect (Ethernet frames) or /tunnel?ip=A&port=P (TCP to A:P)", HFILL } },
        { &hf_gvtap_version,
          { "Version", "gvtap.version", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_gvtap_header,
          { "Header", "gvtap.header", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_gvtap_tunnel_ip,
          { "Tunnel address", "gvtap.tunnel.ip", FT_IPv4, BASE_NONE, NULL, 0x0,
            "Where /tunnel relays the connection to", HFILL } },
        { &hf_gvtap_tunnel_port,
          { "Tunnel port", "gvtap.tunnel.port", FT_UINT16, BASE_DEC, NULL, 0x0,
            "TCP port /tunnel relays the connection to", HFILL } },
        { &hf_gvtap_answer,
          { "Answer", "gvtap.answer", FT_STRING, BASE_NONE, NULL, 0x0,
            "gvproxy's answer to /tunnel before it relays", HFILL } },
        { &hf_gvtap_frame_len,
          { "Frame length", "gvtap.frame_len", FT_UINT16, BASE_DEC, NULL, 0x0,
            "Length of the Ethernet frame that follows (little-endian)", HFILL } },
        { &hf_gvtap_data,
          { "Data", "gvtap.data", FT_BYTES, BASE_NONE, NULL, 0x0,
            "Bytes that are not a complete Ethernet frame", HFILL } },
        { &hf_gvtap_direction,
          { "Direction", "gvtap.direction", FT_UINT8, BASE_DEC, VALS(gvtap_direction_vals), 0x0,
            "Which side sent this: the VM's forwarder sent the request", HFILL } },
        { &hf_gvtap_request_in,
          { "Request in", "gvtap.request_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
            "The request that opened this connection is in this frame", HFILL } },
    };
    static int *ett[] = {
        &ett_gvtap,
        &ett_gvtap_request,
    };
    static ei_register_info ei[] = {
        { &ei_gvtap_request_incomplete,
          { "gvtap.request.incomplete", PI_PROTOCOL, PI_WARN,
            "Request head cut (and no reassembly) or too long", EXPFILL } },
        { &ei_gvtap_request_no_frames,
          { "gvtap.request.no_frames", PI_SEQUENCE, PI_NOTE,
            "No Ethernet frame followed the request", EXPFILL } },
        { &ei_gvtap_tunnel_target_bad,
          { "gvtap.tunnel.target.bad", PI_PROTOCOL, PI_WARN,
            "Tunnel target missing or invalid", EXPFILL } },
        { &ei_gvtap_answer_http,
          { "gvtap.answer.http", PI_RESPONSE_CODE, PI_WARN,
            "The host answered the request with HTTP instead of taking over the connection", EXPFILL } },
        { &ei_gvtap_answer_not_ok,
          { "gvtap.answer.not_ok", PI_PROTOCOL, PI_WARN,
            "The tunnel request was not answered OK", EXPFILL } },
        { &ei_gvtap_frame_len_zero,
          { "gvtap.frame_len.zero", PI_PROTOCOL, PI_WARN,
            "Frame length 0 (the forwarder drops the connection on it)", EXPFILL } },
        { &ei_gvtap_frame_len_short,
          { "gvtap.frame_len.short", PI_MALFORMED, PI_ERROR,
            "Frame shorter than an Ethernet header", EXPFILL } },
        { &ei_gvtap_frame_incomplete,
          { "gvtap.frame.incomplete", PI_REASSEMBLE, PI_WARN,
            "Frame continues past this packet, and no reassembly", EXPFILL } },
        { &ei_gvtap_frame_unfinished,
          { "gvtap.frame.unfinished", PI_SEQUENCE, PI_WARN,
            "The stream ends inside a frame", EXPFILL } },
        { &ei_gvtap_not_frames,
          { "gvtap.not_frames", PI_PROTOCOL, PI_WARN,
            "Not length-prefixed Ethernet frames", EXPFILL } },
        { &ei_gvtap_unsynchronized,
          { "gvtap.unsynchronized", PI_SEQUENCE, PI_NOTE,
            "No frame starts here (the capture began inside the connection): bytes skipped until one does",
            EXPFILL } },
    };

    proto_gvtap = proto_register_protocol("gvisor-tap-vsock network tunnel", "gvisor-tap-vsock", "gvtap");
    proto_register_field_array(proto_gvtap, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_register_field_array(expert_register_protocol(proto_gvtap), ei, array_length(ei));

    gvtap_handle = register_dissector("gvtap", dissect_gvtap, proto_gvtap);
    gvtap_convs = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), g_direct_hash, g_direct_equal);
}

void proto_reg_handoff_gvtap(void)
{
    eth_handle = find_dissector_add_dependency("eth_withoutfcs", proto_gvtap);
    http_handle = find_dissector_add_dependency("http", proto_gvtap);
    tcp_port_table = find_dissector_table("tcp.port");

    /* Port 1024 is also Kata's ttrpc: the request decides, not the port.
     * Mid-connection, the user chooses the port with Decode As. */
    dissector_add_for_decode_as("vsock.port", gvtap_handle);
    heur_dissector_add("vsock", dissect_gvtap_heur, "gvisor-tap-vsock over vsock", "gvtap_vsock", proto_gvtap,
                       HEURISTIC_ENABLE);
    gvtap_heur_entry = find_heur_dissector_by_unique_short_name("gvtap_vsock");
    vsock_payload_not_http(gvtap_claims_request);
}
