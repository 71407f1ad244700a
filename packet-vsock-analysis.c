/* packet-vsock-analysis.c
 * Connection analysis for vsock, in the manner of TCP analysis: connection
 * state, the links between requests and their answers, and credit flow
 * control (virtio spec, "Flow control"), each anomaly an expert info.
 *
 * Runs on the connections packet-vsock-conversation.c tracks. The first pass
 * runs the state machine and stores one record per packet; every pass builds
 * the tree from that record only, so all passes agree.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-analysis.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-records.h"

const value_string vsock_state_vals[] = {
    { VSOCK_STATE_UNKNOWN,            "Tracked from mid-connection" },
    { VSOCK_STATE_CONNECTING,         "Connecting" },
    { VSOCK_STATE_ESTABLISHED,        "Established" },
    { VSOCK_STATE_REFUSED,            "Refused" },
    { VSOCK_STATE_HALF_CLOSED_CLIENT, "Half-closed (connecting side done sending)" },
    { VSOCK_STATE_HALF_CLOSED_SERVER, "Half-closed (listening side done sending)" },
    { VSOCK_STATE_CLOSING,            "Closing" },
    { VSOCK_STATE_CLOSED,             "Closed" },
    { VSOCK_STATE_RESET,              "Reset" },
    { 0, NULL }
};

/* Analysis flags of a packet, each shown as an expert info. */
#define VSOCK_A_UNKNOWN_CONNECTION   0x0001 /* first packet seen is not a REQUEST */
#define VSOCK_A_CREDIT_VIOLATION     0x0002 /* RW beyond the peer's credit */
#define VSOCK_A_CREDIT_EXHAUSTED     0x0004 /* the sender has no credit left */
#define VSOCK_A_CREDIT_REOPENED      0x0008 /* the peer gives credit back to a stalled sender */
#define VSOCK_A_FWD_CNT_BACKWARDS    0x0010
#define VSOCK_A_DATA_AFTER_SHUTDOWN  0x0020 /* RW after the sender's SHUTDOWN send bit */
#define VSOCK_A_DATA_AFTER_RST       0x0040
#define VSOCK_A_DATA_BEFORE_CONNECT  0x0080 /* RW before the RESPONSE */
#define VSOCK_A_REUSED_PORTS         0x0100 /* REQUEST reuses the addresses of an earlier stream */
#define VSOCK_A_REFUSED              0x0200 /* RST answering a REQUEST */
#define VSOCK_A_RESET                0x0400 /* RST aborting a connection (no SHUTDOWN before) */

/* Links of a control packet to the packets that answer it or that it answers
 * (frame numbers, 0 when unknown). Only packets that have one carry this. */
typedef struct vsock_packet_links {
    uint32_t response_in;          /* REQUEST: its RESPONSE or RST */
    uint32_t response_to;          /* RESPONSE or RST: the REQUEST it answers */
    uint32_t rst_in;               /* SHUTDOWN: the RST that answers it */
    uint32_t shutdown_frame;       /* RST: the SHUTDOWN it answers */
    uint32_t credit_update_in;     /* CREDIT_REQUEST: the CREDIT_UPDATE that answers it */
    uint32_t credit_request_frame; /* CREDIT_UPDATE: the CREDIT_REQUEST it answers */
    nstime_t connect_time;         /* RESPONSE or RST: time since the REQUEST */
} vsock_packet_links_t;

/* One per analysed packet (16 bytes: rare facts are kept apart, derived
 * ones are computed). */
struct vsock_analysis_packet {
    uint32_t links;                /* its links in link_records; 0: none */
    /* RW with has_credit: the receiver's buffer and what was sent and not
     * yet consumed by it after this packet (the sender's credit before it
     * follows from them). */
    uint32_t peer_buf_alloc;
    uint32_t bytes_in_flight;
    uint16_t flags;                /* VSOCK_A_* */
    uint8_t state;                 /* enum vsock_conn_state after this packet */
    bool has_credit : 1;
    bool analysed : 1;             /* the first pass filled this record */
};

/* One direction of a connection, named for its sender. */
typedef struct vsock_analysis_flow {
    uint32_t tx_cnt;            /* the kernel's free-running count of bytes sent */
    bool tx_cnt_known;          /* tx_cnt is aligned with the peer's fwd_cnt */
    bool credit_known;          /* buf_alloc and fwd_cnt below were advertised */
    bool stalled;               /* this sender has no credit left */
    bool rst_sent;
    uint32_t buf_alloc;         /* this side's receive buffer ... */
    uint32_t fwd_cnt;           /* ... and how much of it this side consumed */
    uint32_t shutdown_flags;    /* sticky SHUTDOWN bits this side sent */
    vsock_analysis_packet_t *unanswered_shutdown;
    uint32_t unanswered_shutdown_frame;
    vsock_analysis_packet_t *unanswered_credit_request;
    uint32_t unanswered_credit_request_frame;
} vsock_analysis_flow_t;

/* A connection as the analysis knows it, kept with the connection. */
typedef struct vsock_analysis_conn {
    uint8_t state;
    bool is_dgram;
    vsock_analysis_flow_t flow[2];  /* by direction */
    vsock_analysis_packet_t *request;
    uint32_t request_frame;
    nstime_t request_ts;
} vsock_analysis_conn_t;

static int conn_slot = -1;
static vsock_records_t packet_records = VSOCK_RECORDS_INIT(vsock_analysis_packet_t);
/* The links of the control packets that have them, numbered from 1 in the
 * order they were made: an index in the packet record costs half a pointer. */
static vsock_records_t link_records = VSOCK_RECORDS_INIT(vsock_packet_links_t);
static uint32_t link_count;
static vsock_pref_bool vsock_analyze = true;

static int hf_vsock_state = -1;
static int hf_vsock_response_in = -1;
static int hf_vsock_response_to = -1;
static int hf_vsock_connect_time = -1;
static int hf_vsock_rst_in = -1;
static int hf_vsock_shutdown_frame = -1;
static int hf_vsock_credit_update_in = -1;
static int hf_vsock_credit_request_frame = -1;
static int hf_vsock_analysis = -1;
static int hf_vsock_analysis_peer_free = -1;
static int hf_vsock_analysis_bytes_in_flight = -1;

static int ett_vsock_analysis = -1;

static expert_field ei_vsock_analysis_unknown_connection = EI_INIT;
static expert_field ei_vsock_analysis_credit_violation = EI_INIT;
static expert_field ei_vsock_analysis_credit_exhausted = EI_INIT;
static expert_field ei_vsock_analysis_credit_reopened = EI_INIT;
static expert_field ei_vsock_analysis_fwd_cnt_backwards = EI_INIT;
static expert_field ei_vsock_analysis_data_after_shutdown = EI_INIT;
static expert_field ei_vsock_analysis_data_after_rst = EI_INIT;
static expert_field ei_vsock_analysis_data_before_connect = EI_INIT;
static expert_field ei_vsock_analysis_reused_ports = EI_INIT;
static expert_field ei_vsock_analysis_no_response = EI_INIT;
static expert_field ei_vsock_analysis_refused = EI_INIT;
static expert_field ei_vsock_analysis_reset = EI_INIT;

/* The analysis flags with their expert info and Info column tag. */
static const struct {
    uint16_t flag;
    expert_field *ei;
    const char *tag;
} vsock_flag_experts[] = {
    { VSOCK_A_UNKNOWN_CONNECTION,  &ei_vsock_analysis_unknown_connection,  NULL },
    { VSOCK_A_CREDIT_VIOLATION,    &ei_vsock_analysis_credit_violation,    "Credit violation" },
    { VSOCK_A_CREDIT_EXHAUSTED,    &ei_vsock_analysis_credit_exhausted,    "Credit exhausted" },
    { VSOCK_A_CREDIT_REOPENED,     &ei_vsock_analysis_credit_reopened,     "Credit reopened" },
    { VSOCK_A_FWD_CNT_BACKWARDS,   &ei_vsock_analysis_fwd_cnt_backwards,   "fwd_cnt backwards" },
    { VSOCK_A_DATA_AFTER_SHUTDOWN, &ei_vsock_analysis_data_after_shutdown, "Data after SHUTDOWN" },
    { VSOCK_A_DATA_AFTER_RST,      &ei_vsock_analysis_data_after_rst,      "Data after RST" },
    { VSOCK_A_DATA_BEFORE_CONNECT, &ei_vsock_analysis_data_before_connect, "Data before RESPONSE" },
    { VSOCK_A_REUSED_PORTS,        &ei_vsock_analysis_reused_ports,        NULL },
    { VSOCK_A_REFUSED,             &ei_vsock_analysis_refused,             "Refused" },
    { VSOCK_A_RESET,               &ei_vsock_analysis_reset,               "Reset" },
};

static void vsock_analysis_init(void)
{
    vsock_records_reset(&packet_records);
    vsock_records_reset(&link_records);
    link_count = 0;
}

/* The analysis state of the packet's connection, made on its first packet. */
static vsock_analysis_conn_t *get_conn(const vsock_conv_packet_t *cp, const vsock_packet_info_t *packet)
{
    vsock_analysis_conn_t *conn = (vsock_analysis_conn_t *)vsock_conversation_get_data(cp->conv, conn_slot);

    if (!conn) {
        conn = wmem_new0(wmem_file_scope(), vsock_analysis_conn_t);
        conn->state = VSOCK_STATE_UNKNOWN;
        conn->is_dgram = packet->type == VIRTIO_VSOCK_TYPE_DGRAM;
        vsock_conversation_set_data(cp->conv, conn_slot, conn);
    }
    return conn;
}

/* Links are rare (control packets): made when the first one is set. */
static vsock_packet_links_t *links_of(vsock_analysis_packet_t *record)
{
    if (!record->links)
        record->links = ++link_count;
    return (vsock_packet_links_t *)vsock_records_get(&link_records, record->links, true);
}

/* The packet's links, or NULL. */
static const vsock_packet_links_t *packet_links(const vsock_analysis_packet_t *record)
{
    return record->links ? (const vsock_packet_links_t *)vsock_records_get(&link_records, record->links, false)
                         : NULL;
}

/* The sender's credit: what the peer's buffer can still take (virtio spec). */
static bool flow_credit(const vsock_analysis_flow_t *sender, const vsock_analysis_flow_t *peer, int64_t *credit)
{
    if (!sender->tx_cnt_known || !peer->credit_known)
        return false;
    *credit = (int64_t)peer->buf_alloc - (uint32_t)(sender->tx_cnt - peer->fwd_cnt);
    return true;
}

static bool is_terminal(uint8_t state)
{
    return state == VSOCK_STATE_REFUSED || state == VSOCK_STATE_CLOSED || state == VSOCK_STATE_RESET;
}

static void link_answer(vsock_analysis_conn_t *conn, packet_info *pinfo, vsock_analysis_packet_t *record)
{
    vsock_packet_links_t *links;

    if (!conn->request)
        return;
    links_of(conn->request)->response_in = pinfo->num;
    links = links_of(record);
    links->response_to = conn->request_frame;
    nstime_delta(&links->connect_time, &pinfo->abs_ts, &conn->request_ts);
    conn->request = NULL;
}

/* State after a SHUTDOWN: one side done sending is a half-close; a side that
 * shut both ways (close()) or both sides done sending is closing. */
static uint8_t state_after_shutdown(const vsock_analysis_conn_t *conn)
{
    const uint32_t first = conn->flow[0].shutdown_flags, second = conn->flow[1].shutdown_flags;
    const uint32_t both = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

    if ((first & both) == both || (second & both) == both ||
        ((first & VIRTIO_VSOCK_SHUTDOWN_SEND) && (second & VIRTIO_VSOCK_SHUTDOWN_SEND)))
        return VSOCK_STATE_CLOSING;
    if (first & VIRTIO_VSOCK_SHUTDOWN_SEND)
        return VSOCK_STATE_HALF_CLOSED_CLIENT;
    if (second & VIRTIO_VSOCK_SHUTDOWN_SEND)
        return VSOCK_STATE_HALF_CLOSED_SERVER;
    return conn->state;
}

static void track_rst(vsock_analysis_conn_t *conn, packet_info *pinfo, vsock_analysis_packet_t *record,
                      uint8_t dir)
{
    vsock_analysis_flow_t *peer = &conn->flow[1 - dir];

    conn->flow[dir].rst_sent = true;
    if (peer->unanswered_shutdown) {
        links_of(peer->unanswered_shutdown)->rst_in = pinfo->num;
        links_of(record)->shutdown_frame = peer->unanswered_shutdown_frame;
        peer->unanswered_shutdown = NULL;
    }
    switch (conn->state) {
    case VSOCK_STATE_CONNECTING:
        link_answer(conn, pinfo, record);
        conn->state = VSOCK_STATE_REFUSED;
        record->flags |= VSOCK_A_REFUSED;
        break;
    case VSOCK_STATE_HALF_CLOSED_CLIENT:
    case VSOCK_STATE_HALF_CLOSED_SERVER:
    case VSOCK_STATE_CLOSING:
        conn->state = VSOCK_STATE_CLOSED;
        break;
    case VSOCK_STATE_UNKNOWN:
    case VSOCK_STATE_ESTABLISHED:
        conn->state = VSOCK_STATE_RESET;
        record->flags |= VSOCK_A_RESET;
        break;
    default:
        break; /* duplicate RSTs after a close are normal */
    }
}

/* Credit accounting of an RW from dir: before it, the sender's credit. */
static void track_rw(vsock_analysis_conn_t *conn, vsock_analysis_packet_t *record, uint8_t dir, uint32_t len)
{
    vsock_analysis_flow_t *sender = &conn->flow[dir], *peer = &conn->flow[1 - dir];
    int64_t credit = 0;

    if (sender->shutdown_flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
        record->flags |= VSOCK_A_DATA_AFTER_SHUTDOWN;
    if (sender->rst_sent || peer->rst_sent)
        record->flags |= VSOCK_A_DATA_AFTER_RST;
    if (conn->state == VSOCK_STATE_CONNECTING)
        record->flags |= VSOCK_A_DATA_BEFORE_CONNECT;

    if (flow_credit(sender, peer, &credit)) {
        record->has_credit = true;
        record->peer_buf_alloc = peer->buf_alloc;
        if ((int64_t)len > credit)
            record->flags |= VSOCK_A_CREDIT_VIOLATION;
    }
    sender->tx_cnt += len;
    if (record->has_credit) {
        record->bytes_in_flight = sender->tx_cnt - peer->fwd_cnt;
        if (credit - (int64_t)len <= 0 && len > 0) {
            record->flags |= VSOCK_A_CREDIT_EXHAUSTED;
            sender->stalled = true;
        }
    }
}

/* Every packet advertises its sender's buf_alloc and fwd_cnt: the credit of
 * the other direction. */
static void track_advertised_credit(vsock_analysis_conn_t *conn, vsock_analysis_packet_t *record, uint8_t dir,
                                    const vsock_packet_info_t *packet)
{
    vsock_analysis_flow_t *sender = &conn->flow[dir], *peer = &conn->flow[1 - dir];
    int64_t credit;

    /* An RST for an unknown socket carries zeros: it advertises nothing. */
    if (packet->virtio_op == VIRTIO_VSOCK_OP_RST)
        return;
    if (sender->credit_known && (int32_t)(packet->fwd_cnt - sender->fwd_cnt) < 0)
        record->flags |= VSOCK_A_FWD_CNT_BACKWARDS;
    sender->buf_alloc = packet->buf_alloc;
    sender->fwd_cnt = packet->fwd_cnt;
    sender->credit_known = true;

    /* Tracked from mid-connection: assume nothing of the peer's was in flight. */
    if (!peer->tx_cnt_known) {
        peer->tx_cnt = packet->fwd_cnt;
        peer->tx_cnt_known = true;
    }
    if (peer->stalled && flow_credit(peer, sender, &credit) && credit > 0) {
        record->flags |= VSOCK_A_CREDIT_REOPENED;
        peer->stalled = false;
    }
}

static void track_operation(vsock_analysis_conn_t *conn, packet_info *pinfo, vsock_analysis_packet_t *record,
                            uint8_t dir, const vsock_packet_info_t *packet)
{
    vsock_analysis_flow_t *sender = &conn->flow[dir], *peer = &conn->flow[1 - dir];

    switch (packet->virtio_op) {
    case VIRTIO_VSOCK_OP_REQUEST:
        conn->state = VSOCK_STATE_CONNECTING;
        conn->request = record;
        conn->request_frame = pinfo->num;
        conn->request_ts = pinfo->abs_ts;
        sender->tx_cnt_known = true;   /* a connection's counters start at zero */
        peer->tx_cnt_known = true;
        break;
    case VIRTIO_VSOCK_OP_RESPONSE:
        if (conn->state == VSOCK_STATE_CONNECTING)
            link_answer(conn, pinfo, record);
        if (conn->state == VSOCK_STATE_CONNECTING || conn->state == VSOCK_STATE_UNKNOWN)
            conn->state = VSOCK_STATE_ESTABLISHED;
        break;
    case VIRTIO_VSOCK_OP_RST:
        track_rst(conn, pinfo, record, dir);
        break;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
        sender->shutdown_flags |= packet->flags;
        sender->unanswered_shutdown = record;
        sender->unanswered_shutdown_frame = pinfo->num;
        if (!is_terminal(conn->state))
            conn->state = state_after_shutdown(conn);
        break;
    case VIRTIO_VSOCK_OP_RW:
        track_rw(conn, record, dir, packet->len);
        break;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        sender->unanswered_credit_request = record;
        sender->unanswered_credit_request_frame = pinfo->num;
        break;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        if (peer->unanswered_credit_request) {
            links_of(peer->unanswered_credit_request)->credit_update_in = pinfo->num;
            links_of(record)->credit_request_frame = peer->unanswered_credit_request_frame;
            peer->unanswered_credit_request = NULL;
        }
        break;
    default:
        break;
    }
    track_advertised_credit(conn, record, dir, packet);
}

static void analyse_first_pass(packet_info *pinfo, const vsock_packet_info_t *packet, vsock_analysis_packet_t *record)
{
    const vsock_conv_packet_t *cp = packet->conv;
    vsock_analysis_conn_t *conn = get_conn(cp, packet);

    record->analysed = true;
    if (cp->flags & VSOCK_CONV_P_MIDSTREAM)
        record->flags |= VSOCK_A_UNKNOWN_CONNECTION;
    if (cp->flags & VSOCK_CONV_P_REUSED_PORTS)
        record->flags |= VSOCK_A_REUSED_PORTS;
    /* Datagrams have no connection to analyse. */
    if (conn->is_dgram)
        return;
    track_operation(conn, pinfo, record, cp->direction, packet);
    record->state = conn->state;
}

const vsock_analysis_packet_t *vsock_analysis_track(packet_info *pinfo, const vsock_packet_info_t *packet)
{
    vsock_analysis_packet_t *record;

    /* Only virtio packets carry what the analysis needs. */
    if (!vsock_analyze || !packet->has_virtio || !packet->conv)
        return NULL;
    record = (vsock_analysis_packet_t *)vsock_records_get(&packet_records, pinfo->num, !PINFO_FD_VISITED(pinfo));
    if (record && !record->analysed && !PINFO_FD_VISITED(pinfo))
        analyse_first_pass(pinfo, packet, record);
    return record && record->analysed ? record : NULL;
}

bool vsock_analysis_state(packet_info *pinfo, uint8_t *state)
{
    const vsock_analysis_packet_t *record =
        (const vsock_analysis_packet_t *)vsock_records_get(&packet_records, pinfo->num, false);

    if (!record || !record->analysed)
        return false;
    *state = record->state;
    return true;
}

/* The sender's credit before an RW (with has_credit). */
static int64_t packet_peer_free(const vsock_analysis_packet_t *record, const vsock_packet_info_t *packet)
{
    return (int64_t)record->peer_buf_alloc - (uint32_t)(record->bytes_in_flight - packet->len);
}

static void add_frame_link(proto_tree *tree, int hf, tvbuff_t *tvb, uint32_t frame)
{
    if (frame)
        proto_item_set_generated(proto_tree_add_uint(tree, hf, tvb, 0, 0, frame));
}

static void add_analysis_experts(packet_info *pinfo, proto_item *item, const vsock_packet_info_t *packet,
                                 const vsock_analysis_packet_t *record)
{
    const vsock_packet_links_t *links = packet_links(record);

    for (size_t i = 0; i < array_length(vsock_flag_experts); i++) {
        if (!(record->flags & vsock_flag_experts[i].flag))
            continue;
        if (vsock_flag_experts[i].flag == VSOCK_A_CREDIT_VIOLATION)
            expert_add_info_format(pinfo, item, vsock_flag_experts[i].ei,
                                   "RW of %u bytes exceeds the sender's credit of %" PRId64 " bytes",
                                   packet->len, packet_peer_free(record, packet));
        else if (vsock_flag_experts[i].flag == VSOCK_A_REFUSED)
            expert_add_info_format(pinfo, item, vsock_flag_experts[i].ei,
                                   "Connection refused: the REQUEST in frame %u was answered by RST",
                                   links ? links->response_to : 0);
        else
            expert_add_info(pinfo, item, vsock_flag_experts[i].ei);
    }
    /* Only a later pass knows that no answer ever came. */
    if (packet->virtio_op == VIRTIO_VSOCK_OP_REQUEST && !(links && links->response_in) &&
        PINFO_FD_VISITED(pinfo))
        expert_add_info(pinfo, item, &ei_vsock_analysis_no_response);
}

void vsock_analysis_tag_info(packet_info *pinfo, const vsock_analysis_packet_t *record)
{
    if (!pinfo->cinfo)
        return;
    /* Backwards, as each tag is prepended: the Info column lists them in table order. */
    for (size_t n = array_length(vsock_flag_experts); n > 0; n--) {
        if ((record->flags & vsock_flag_experts[n - 1].flag) && vsock_flag_experts[n - 1].tag)
            col_prepend_fence_fstr(pinfo->cinfo, COL_INFO, "[%s] ", vsock_flag_experts[n - 1].tag);
    }
}

void vsock_analysis_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                             const vsock_packet_info_t *packet, const vsock_analysis_packet_t *record)
{
    const vsock_packet_links_t *links = packet_links(record);
    proto_item *item;
    proto_tree *analysis_tree;

    /* Fields a tree that only filters does not ask for are not added (see
     * add_cid() in packet-vsock.c); the experts then go to the parent. */
    if (packet->type != VIRTIO_VSOCK_TYPE_DGRAM && proto_field_is_referenced(tree, hf_vsock_state))
        proto_item_set_generated(proto_tree_add_uint(tree, hf_vsock_state, tvb, 0, 0, record->state));
    if (links) {
        add_frame_link(tree, hf_vsock_response_in, tvb, links->response_in);
        add_frame_link(tree, hf_vsock_response_to, tvb, links->response_to);
        if (links->response_to)
            proto_item_set_generated(proto_tree_add_time(tree, hf_vsock_connect_time, tvb, 0, 0,
                                                         &links->connect_time));
        add_frame_link(tree, hf_vsock_rst_in, tvb, links->rst_in);
        add_frame_link(tree, hf_vsock_shutdown_frame, tvb, links->shutdown_frame);
        add_frame_link(tree, hf_vsock_credit_update_in, tvb, links->credit_update_in);
        add_frame_link(tree, hf_vsock_credit_request_frame, tvb, links->credit_request_frame);
    }

    item = analysis_tree = tree;
    if (proto_field_is_referenced(tree, hf_vsock_analysis)) {
        item = proto_tree_add_item(tree, hf_vsock_analysis, tvb, 0, 0, ENC_NA);
        proto_item_set_generated(item);
        analysis_tree = proto_item_add_subtree(item, ett_vsock_analysis);
    }
    if (packet->virtio_op == VIRTIO_VSOCK_OP_RW && record->has_credit) {
        if (proto_field_is_referenced(tree, hf_vsock_analysis_peer_free))
            proto_item_set_generated(proto_tree_add_int64(analysis_tree, hf_vsock_analysis_peer_free, tvb, 0, 0,
                                                          packet_peer_free(record, packet)));
        if (proto_field_is_referenced(tree, hf_vsock_analysis_bytes_in_flight))
            proto_item_set_generated(proto_tree_add_uint(analysis_tree, hf_vsock_analysis_bytes_in_flight, tvb,
                                                         0, 0, record->bytes_in_flight));
    }
    add_analysis_experts(pinfo, item, packet, record);
}

void vsock_analysis_register(int proto, module_t *prefs, expert_module_t *expert)
{
    static hf_register_info hf[] = {
        { &hf_vsock_state,
          { "Connection state", "vsock.state", FT_UINT8, BASE_DEC, VALS(vsock_state_vals), 0x0,
            "State of the connection after this packet", HFILL } },
        { &hf_vsock_response_in,
          { "Answered in", "vsock.response_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE),
            0x0, "The RESPONSE or RST that answers this REQUEST", HFILL } },
        { &hf_vsock_response_to,
          { "Request in", "vsock.response_to", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST),
            0x0, "The REQUEST this RESPONSE or RST answers", HFILL } },
        { &hf_vsock_connect_time,
          { "Time since request", "vsock.connect_time", FT_RELATIVE_TIME, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_rst_in,
          { "RST in", "vsock.rst_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
            "The RST that answers this SHUTDOWN", HFILL } },
        { &hf_vsock_shutdown_frame,
          { "SHUTDOWN in", "vsock.shutdown_frame", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST),
            0x0, "The SHUTDOWN this RST answers", HFILL } },
        { &hf_vsock_credit_update_in,
          { "Credit update in", "vsock.credit_update_in", FT_FRAMENUM, BASE_NONE,
            FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0, NULL, HFILL } },
        { &hf_vsock_credit_request_frame,
          { "Credit request in", "vsock.credit_request_frame", FT_FRAMENUM, BASE_NONE,
            FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0, NULL, HFILL } },
        { &hf_vsock_analysis,
          { "Connection analysis", "vsock.analysis", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_analysis_peer_free,
          { "Sender's credit before this packet", "vsock.analysis.peer_free", FT_INT64, BASE_DEC, NULL, 0x0,
            "peer buf_alloc - (bytes sent - peer fwd_cnt)", HFILL } },
        { &hf_vsock_analysis_bytes_in_flight,
          { "Bytes in flight", "vsock.analysis.bytes_in_flight", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Bytes sent and not yet consumed by the peer, this packet included", HFILL } },
    };
    static int *ett[] = {
        &ett_vsock_analysis,
    };
    static ei_register_info ei[] = {
        { &ei_vsock_analysis_unknown_connection,
          { "vsock.analysis.unknown_connection", PI_SEQUENCE, PI_NOTE,
            "Packet of a connection whose start was not captured: tracked from here", EXPFILL } },
        { &ei_vsock_analysis_credit_violation,
          { "vsock.analysis.credit_violation", PI_PROTOCOL, PI_WARN,
            "RW exceeds the sender's credit", EXPFILL } },
        { &ei_vsock_analysis_credit_exhausted,
          { "vsock.analysis.credit_exhausted", PI_SEQUENCE, PI_WARN,
            "Credit exhausted: the sender must wait for a credit update", EXPFILL } },
        { &ei_vsock_analysis_credit_reopened,
          { "vsock.analysis.credit_reopened", PI_SEQUENCE, PI_CHAT,
            "Credit reopened: the stalled sender may send again", EXPFILL } },
        { &ei_vsock_analysis_fwd_cnt_backwards,
          { "vsock.analysis.fwd_cnt_backwards", PI_PROTOCOL, PI_WARN,
            "fwd_cnt went backwards", EXPFILL } },
        { &ei_vsock_analysis_data_after_shutdown,
          { "vsock.analysis.data_after_shutdown", PI_PROTOCOL, PI_WARN,
            "Data after the sender's SHUTDOWN (send)", EXPFILL } },
        { &ei_vsock_analysis_data_after_rst,
          { "vsock.analysis.data_after_rst", PI_PROTOCOL, PI_WARN,
            "Data after RST", EXPFILL } },
        { &ei_vsock_analysis_data_before_connect,
          { "vsock.analysis.data_before_connect", PI_PROTOCOL, PI_WARN,
            "Data before the connection was established", EXPFILL } },
        { &ei_vsock_analysis_reused_ports,
          { "vsock.analysis.reused_ports", PI_SEQUENCE, PI_NOTE,
            "A new connection reuses the CIDs and ports of an earlier stream", EXPFILL } },
        { &ei_vsock_analysis_no_response,
          { "vsock.analysis.no_response", PI_SEQUENCE, PI_WARN,
            "REQUEST never answered", EXPFILL } },
        { &ei_vsock_analysis_refused,
          { "vsock.analysis.refused", PI_SEQUENCE, PI_WARN,
            "Connection refused", EXPFILL } },
        { &ei_vsock_analysis_reset,
          { "vsock.analysis.reset", PI_SEQUENCE, PI_WARN,
            "Connection reset: RST without SHUTDOWN", EXPFILL } },
    };

    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_register_field_array(expert, ei, array_length(ei));
    register_init_routine(vsock_analysis_init);
    conn_slot = vsock_conversation_new_data_slot();
    prefs_register_bool_preference(prefs, "analyze_connections", "Analyze vsock connections",
                                   "Connection state, the links between requests and their answers, "
                                   "credit flow control and the expert info about them. Streams "
                                   "(vsock.stream), Follow, reassembly and the payload hand-off work "
                                   "without it.",
                                   &vsock_analyze);
}
