/* packet-vsock-analysis.c
 * Connection tracking for vsock, in the manner of TCP analysis: streams,
 * per-direction offsets, connection state, the links between requests and
 * their answers, and credit flow control (virtio spec, "Flow control").
 *
 * The first pass runs the state machine and stores one record per packet;
 * every pass builds the tree from that record only, so all passes agree.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>

#include "vsock-compat.h"
#include "packet-vsock.h"

/* The per-packet records live in pages indexed by frame number (a capture's
 * frames are numbered from 1 without gaps). Every packet of a capture has
 * one, so this saves what p_add_proto_data costs per packet on top of the
 * record: an allocation header, a proto_data_t and a list node, about as much
 * again as the record itself. A record is in use when its conv is set. */
#define RECORDS_PER_PAGE 4096

static const value_string vsock_state_vals[] = {
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

/* One direction of a connection, named for its sender. */
typedef struct vsock_flow {
    uint64_t cid;
    uint32_t port;
    uint64_t seq;               /* payload bytes sent since tracking began */
    uint32_t tx_cnt;            /* the kernel's free-running count of bytes sent */
    bool tx_cnt_known;     /* tx_cnt is aligned with the peer's fwd_cnt */
    bool credit_known;     /* buf_alloc and fwd_cnt below were advertised */
    uint32_t buf_alloc;         /* this side's receive buffer ... */
    uint32_t fwd_cnt;           /* ... and how much of it this side consumed */
    bool stalled;          /* this sender has no credit left */
    uint32_t shutdown_flags;    /* sticky SHUTDOWN bits this side sent */
    bool rst_sent;
    vsock_packet_analysis_t *unanswered_shutdown;
    uint32_t unanswered_shutdown_frame;
    vsock_packet_analysis_t *unanswered_credit_request;
    uint32_t unanswered_credit_request_frame;
    vsock_payload_flow_t payload; /* the hand-off's state of this direction */
} vsock_flow_t;

/* Both directions of a connection share one key: the lower endpoint first. */
typedef struct vsock_conv_key {
    uint64_t cid[2];
    uint32_t port[2];
} vsock_conv_key_t;

struct vsock_conv {
    vsock_conv_key_t key;
    uint32_t stream;
    uint8_t state;
    bool is_dgram;
    bool start_seen;       /* the REQUEST was captured */
    vsock_flow_t flow[2];      /* flow[0]: the side seen first */
    vsock_packet_analysis_t *request;
    uint32_t request_frame;
    nstime_t request_ts;
    nstime_t ts_first;
    nstime_t ts_prev;
};

static int proto_vsock = -1;
static uint32_t vsock_stream_count;
/* The current connection of each pair of endpoints. Looked up for every
 * packet, so keyed by the endpoints themselves: Wireshark's generic
 * conversation table (conversation_new_full/find_conversation_full) hashes
 * element lists and cost 14 % of a read. */
static wmem_map_t *vsock_connections;
/* The connections of recent packets, by key hash: a capture interleaves a
 * few busy connections, and in a map of tens of thousands of connections
 * every lookup missed the processor's caches (bucket, item, key). */
#define RECENT_CONNECTIONS 256
static vsock_conv_t *recent_connections[RECENT_CONNECTIONS];
static void **record_pages; /* pages of RECORDS_PER_PAGE records, wmem_file_scope */
static uint32_t record_page_count;
static vsock_pref_bool vsock_analyze = true;

static int hf_vsock_stream = -1;
static int hf_vsock_seq = -1;
static int hf_vsock_nxtseq = -1;
static int hf_vsock_time_relative = -1;
static int hf_vsock_time_delta = -1;
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

static expert_field ei_vsock_unknown_connection = EI_INIT;
static expert_field ei_vsock_credit_violation = EI_INIT;
static expert_field ei_vsock_credit_exhausted = EI_INIT;
static expert_field ei_vsock_credit_reopened = EI_INIT;
static expert_field ei_vsock_fwd_cnt_backwards = EI_INIT;
static expert_field ei_vsock_data_after_shutdown = EI_INIT;
static expert_field ei_vsock_data_after_rst = EI_INIT;
static expert_field ei_vsock_data_before_connect = EI_INIT;
static expert_field ei_vsock_stream_reused = EI_INIT;
static expert_field ei_vsock_no_response = EI_INIT;
static expert_field ei_vsock_refused = EI_INIT;
static expert_field ei_vsock_reset = EI_INIT;

/* The analysis flags with their expert info and Info column tag. */
static const struct {
    uint16_t flag;
    expert_field *ei;
    const char *tag;
} vsock_flag_experts[] = {
    { VSOCK_A_UNKNOWN_CONNECTION,  &ei_vsock_unknown_connection,  NULL },
    { VSOCK_A_CREDIT_VIOLATION,    &ei_vsock_credit_violation,    "Credit violation" },
    { VSOCK_A_CREDIT_EXHAUSTED,    &ei_vsock_credit_exhausted,    "Credit exhausted" },
    { VSOCK_A_CREDIT_REOPENED,     &ei_vsock_credit_reopened,     "Credit reopened" },
    { VSOCK_A_FWD_CNT_BACKWARDS,   &ei_vsock_fwd_cnt_backwards,   "fwd_cnt backwards" },
    { VSOCK_A_DATA_AFTER_SHUTDOWN, &ei_vsock_data_after_shutdown, "Data after SHUTDOWN" },
    { VSOCK_A_DATA_AFTER_RST,      &ei_vsock_data_after_rst,      "Data after RST" },
    { VSOCK_A_DATA_BEFORE_CONNECT, &ei_vsock_data_before_connect, "Data before RESPONSE" },
    { VSOCK_A_NEW_STREAM_REUSE,    &ei_vsock_stream_reused,       NULL },
    { VSOCK_A_REFUSED,             &ei_vsock_refused,             "Refused" },
    { VSOCK_A_RESET,               &ei_vsock_reset,               "Reset" },
};

static void vsock_analysis_init_routine(void)
{
    vsock_stream_count = 0;
    memset(recent_connections, 0, sizeof recent_connections);
    record_pages = NULL;
    record_page_count = 0;
}

/* The record slot of a frame; with create, its page is made if missing. */
static vsock_packet_analysis_t *record_slot(uint32_t frame, bool create)
{
    const uint32_t page = frame / RECORDS_PER_PAGE;
    vsock_packet_analysis_t *records;

    if (page >= record_page_count) {
        uint32_t count = MAX(record_page_count, 16);

        if (!create)
            return NULL;
        while (count <= page)
            count *= 2;
        record_pages = (void **)wmem_realloc(wmem_file_scope(), record_pages, count * sizeof(void *));
        memset(record_pages + record_page_count, 0, (count - record_page_count) * sizeof(void *));
        record_page_count = count;
    }
    records = (vsock_packet_analysis_t *)record_pages[page];
    if (!records) {
        if (!create)
            return NULL;
        records = wmem_alloc0_array(wmem_file_scope(), vsock_packet_analysis_t, RECORDS_PER_PAGE);
        record_pages[page] = records;
    }
    return &records[frame % RECORDS_PER_PAGE];
}

static void make_conv_key(const vsock_hdr_t *hdr, vsock_conv_key_t *key)
{
    bool src_first = hdr->src_cid < hdr->dst_cid ||
                         (hdr->src_cid == hdr->dst_cid && hdr->src_port <= hdr->dst_port);

    key->cid[0] = src_first ? hdr->src_cid : hdr->dst_cid;
    key->port[0] = src_first ? hdr->src_port : hdr->dst_port;
    key->cid[1] = src_first ? hdr->dst_cid : hdr->src_cid;
    key->port[1] = src_first ? hdr->dst_port : hdr->src_port;
}

static unsigned conv_key_hash(const void *k)
{
    const vsock_conv_key_t *key = (const vsock_conv_key_t *)k;
    uint64_t h = key->cid[0] * UINT64_C(0x9E3779B97F4A7C15);

    h = (h ^ key->cid[1]) * UINT64_C(0x9E3779B97F4A7C15);
    h = (h ^ (((uint64_t)key->port[0] << 32) | key->port[1])) * UINT64_C(0x9E3779B97F4A7C15);
    return (unsigned)(h >> 32);
}

/* A GLib callback (GEqualFunc): its return type stays gboolean. */
static gboolean conv_key_equal(const void *a, const void *b)
{
    const vsock_conv_key_t *ka = (const vsock_conv_key_t *)a, *kb = (const vsock_conv_key_t *)b;

    return ka->cid[0] == kb->cid[0] && ka->cid[1] == kb->cid[1] &&
           ka->port[0] == kb->port[0] && ka->port[1] == kb->port[1];
}

static vsock_conv_t *new_vsock_conv(packet_info *pinfo, const vsock_hdr_t *hdr, const vsock_conv_key_t *key)
{
    vsock_conv_t *vconv = wmem_new0(wmem_file_scope(), vsock_conv_t);

    vconv->key = *key;
    vconv->stream = vsock_stream_count++;
    vconv->state = VSOCK_STATE_UNKNOWN;
    vconv->is_dgram = hdr->type == VIRTIO_VSOCK_TYPE_DGRAM;
    vconv->start_seen = hdr->virtio_op == VIRTIO_VSOCK_OP_REQUEST;
    vconv->flow[0].cid = hdr->src_cid;
    vconv->flow[0].port = hdr->src_port;
    vconv->flow[1].cid = hdr->dst_cid;
    vconv->flow[1].port = hdr->dst_port;
    vconv->ts_first = pinfo->abs_ts;
    vconv->ts_prev = pinfo->abs_ts;
    wmem_map_insert(vsock_connections, &vconv->key, vconv);
    return vconv;
}

/* Finds the connection, or starts a stream: on its first packet, and on
 * every REQUEST (a REQUEST always opens a new connection). */
static vsock_conv_t *get_vsock_conv(packet_info *pinfo, const vsock_hdr_t *hdr, vsock_packet_analysis_t *pa)
{
    vsock_conv_key_t key;
    vsock_conv_t *vconv, **recent;

    make_conv_key(hdr, &key);
    recent = &recent_connections[conv_key_hash(&key) % RECENT_CONNECTIONS];
    if (*recent && conv_key_equal(&(*recent)->key, &key))
        vconv = *recent;
    else
        vconv = (vsock_conv_t *)wmem_map_lookup(vsock_connections, &key);
    if (vconv && hdr->virtio_op == VIRTIO_VSOCK_OP_REQUEST) {
        pa->flags |= VSOCK_A_NEW_STREAM_REUSE;
        vconv = NULL;
    }
    if (!vconv) {
        vconv = new_vsock_conv(pinfo, hdr, &key);
        if (hdr->virtio_op != VIRTIO_VSOCK_OP_REQUEST && !vconv->is_dgram)
            pa->flags |= VSOCK_A_UNKNOWN_CONNECTION;
    }
    *recent = vconv;
    return vconv;
}

/* Links are rare (control packets): allocated when the first one is set. */
static vsock_packet_links_t *links_of(vsock_packet_analysis_t *pa)
{
    if (!pa->links)
        pa->links = wmem_new0(wmem_file_scope(), vsock_packet_links_t);
    return pa->links;
}

/* The sender's credit: what the peer's buffer can still take (virtio spec). */
static bool flow_credit(const vsock_flow_t *sender, const vsock_flow_t *peer, int64_t *credit)
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

static void link_answer(vsock_conv_t *vconv, packet_info *pinfo, vsock_packet_analysis_t *pa)
{
    vsock_packet_links_t *links;

    if (!vconv->request)
        return;
    links_of(vconv->request)->response_in = pinfo->num;
    links = links_of(pa);
    links->response_to = vconv->request_frame;
    nstime_delta(&links->connect_time, &pinfo->abs_ts, &vconv->request_ts);
    vconv->request = NULL;
}

/* State after a SHUTDOWN: one side done sending is a half-close; a side that
 * shut both ways (close()) or both sides done sending is closing. */
static uint8_t state_after_shutdown(const vsock_conv_t *vconv)
{
    uint32_t first = vconv->flow[0].shutdown_flags, second = vconv->flow[1].shutdown_flags;
    const uint32_t both = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

    if ((first & both) == both || (second & both) == both ||
        ((first & VIRTIO_VSOCK_SHUTDOWN_SEND) && (second & VIRTIO_VSOCK_SHUTDOWN_SEND)))
        return VSOCK_STATE_CLOSING;
    if (first & VIRTIO_VSOCK_SHUTDOWN_SEND)
        return VSOCK_STATE_HALF_CLOSED_CLIENT;
    if (second & VIRTIO_VSOCK_SHUTDOWN_SEND)
        return VSOCK_STATE_HALF_CLOSED_SERVER;
    return vconv->state;
}

static void track_rst(vsock_conv_t *vconv, packet_info *pinfo, vsock_packet_analysis_t *pa, uint8_t dir)
{
    vsock_flow_t *peer = &vconv->flow[1 - dir];

    vconv->flow[dir].rst_sent = true;
    if (peer->unanswered_shutdown) {
        links_of(peer->unanswered_shutdown)->rst_in = pinfo->num;
        links_of(pa)->shutdown_frame = peer->unanswered_shutdown_frame;
        peer->unanswered_shutdown = NULL;
    }
    switch (vconv->state) {
    case VSOCK_STATE_CONNECTING:
        link_answer(vconv, pinfo, pa);
        vconv->state = VSOCK_STATE_REFUSED;
        pa->flags |= VSOCK_A_REFUSED;
        break;
    case VSOCK_STATE_HALF_CLOSED_CLIENT:
    case VSOCK_STATE_HALF_CLOSED_SERVER:
    case VSOCK_STATE_CLOSING:
        vconv->state = VSOCK_STATE_CLOSED;
        break;
    case VSOCK_STATE_UNKNOWN:
    case VSOCK_STATE_ESTABLISHED:
        vconv->state = VSOCK_STATE_RESET;
        pa->flags |= VSOCK_A_RESET;
        break;
    default:
        break; /* duplicate RSTs after a close are normal */
    }
}

/* Credit accounting of an RW from dir: before it, the sender's credit. */
static void track_rw(vsock_conv_t *vconv, vsock_packet_analysis_t *pa, uint8_t dir, uint32_t len)
{
    vsock_flow_t *sender = &vconv->flow[dir], *peer = &vconv->flow[1 - dir];
    int64_t credit = 0;

    if (sender->shutdown_flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
        pa->flags |= VSOCK_A_DATA_AFTER_SHUTDOWN;
    if (sender->rst_sent || peer->rst_sent)
        pa->flags |= VSOCK_A_DATA_AFTER_RST;
    if (vconv->state == VSOCK_STATE_CONNECTING)
        pa->flags |= VSOCK_A_DATA_BEFORE_CONNECT;

    if (sender->seq == 0 && vconv->start_seen)
        pa->pflags |= VSOCK_P_STREAM_START;
    if (flow_credit(sender, peer, &credit)) {
        pa->pflags |= VSOCK_P_HAS_CREDIT;
        pa->peer_buf_alloc = peer->buf_alloc;
        if ((int64_t)len > credit)
            pa->flags |= VSOCK_A_CREDIT_VIOLATION;
    }
    sender->tx_cnt += len;
    sender->seq += len;
    if (pa->pflags & VSOCK_P_HAS_CREDIT) {
        pa->bytes_in_flight = sender->tx_cnt - peer->fwd_cnt;
        if (credit - (int64_t)len <= 0 && len > 0) {
            pa->flags |= VSOCK_A_CREDIT_EXHAUSTED;
            sender->stalled = true;
        }
    }
}

/* Every packet advertises its sender's buf_alloc and fwd_cnt: the credit of
 * the other direction. */
static void track_advertised_credit(vsock_conv_t *vconv, vsock_packet_analysis_t *pa, uint8_t dir,
                                    const vsock_hdr_t *hdr)
{
    vsock_flow_t *sender = &vconv->flow[dir], *peer = &vconv->flow[1 - dir];
    int64_t credit;

    /* An RST for an unknown socket carries zeros: it advertises nothing. */
    if (hdr->virtio_op == VIRTIO_VSOCK_OP_RST)
        return;
    if (sender->credit_known && (int32_t)(hdr->fwd_cnt - sender->fwd_cnt) < 0)
        pa->flags |= VSOCK_A_FWD_CNT_BACKWARDS;
    sender->buf_alloc = hdr->buf_alloc;
    sender->fwd_cnt = hdr->fwd_cnt;
    sender->credit_known = true;

    /* Tracked from mid-connection: assume nothing of the peer's was in flight. */
    if (!peer->tx_cnt_known) {
        peer->tx_cnt = hdr->fwd_cnt;
        peer->tx_cnt_known = true;
    }
    if (peer->stalled && flow_credit(peer, sender, &credit) && credit > 0) {
        pa->flags |= VSOCK_A_CREDIT_REOPENED;
        peer->stalled = false;
    }
}

static void track_operation(vsock_conv_t *vconv, packet_info *pinfo, vsock_packet_analysis_t *pa,
                            uint8_t dir, const vsock_hdr_t *hdr)
{
    vsock_flow_t *sender = &vconv->flow[dir], *peer = &vconv->flow[1 - dir];

    switch (hdr->virtio_op) {
    case VIRTIO_VSOCK_OP_REQUEST:
        vconv->state = VSOCK_STATE_CONNECTING;
        vconv->request = pa;
        vconv->request_frame = pinfo->num;
        vconv->request_ts = pinfo->abs_ts;
        sender->tx_cnt_known = true;   /* a connection's counters start at zero */
        peer->tx_cnt_known = true;
        break;
    case VIRTIO_VSOCK_OP_RESPONSE:
        if (vconv->state == VSOCK_STATE_CONNECTING)
            link_answer(vconv, pinfo, pa);
        if (vconv->state == VSOCK_STATE_CONNECTING || vconv->state == VSOCK_STATE_UNKNOWN)
            vconv->state = VSOCK_STATE_ESTABLISHED;
        break;
    case VIRTIO_VSOCK_OP_RST:
        track_rst(vconv, pinfo, pa, dir);
        break;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
        sender->shutdown_flags |= hdr->flags;
        sender->unanswered_shutdown = pa;
        sender->unanswered_shutdown_frame = pinfo->num;
        if (!is_terminal(vconv->state))
            vconv->state = state_after_shutdown(vconv);
        break;
    case VIRTIO_VSOCK_OP_RW:
        track_rw(vconv, pa, dir, hdr->len);
        break;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        sender->unanswered_credit_request = pa;
        sender->unanswered_credit_request_frame = pinfo->num;
        break;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        if (peer->unanswered_credit_request) {
            links_of(peer->unanswered_credit_request)->credit_update_in = pinfo->num;
            links_of(pa)->credit_request_frame = peer->unanswered_credit_request_frame;
            peer->unanswered_credit_request = NULL;
        }
        break;
    default:
        break;
    }
    track_advertised_credit(vconv, pa, dir, hdr);
}

/* Datagrams have no connection: offsets and times only. */
static void track_dgram(vsock_conv_t *vconv, vsock_packet_analysis_t *pa, uint8_t dir, const vsock_hdr_t *hdr)
{
    if (hdr->virtio_op == VIRTIO_VSOCK_OP_RW)
        vconv->flow[dir].seq += hdr->len;
    pa->state = VSOCK_STATE_UNKNOWN;
}

static void analyze_first_pass(packet_info *pinfo, const vsock_hdr_t *hdr, vsock_packet_analysis_t *pa)
{
    vsock_conv_t *vconv = get_vsock_conv(pinfo, hdr, pa);
    uint8_t dir = (hdr->src_cid == vconv->flow[0].cid && hdr->src_port == vconv->flow[0].port) ? 0 : 1;
    nstime_t delta;

    pa->conv = vconv;
    pa->direction = dir;
    pa->seq = vconv->flow[dir].seq;
    nstime_delta(&delta, &pinfo->abs_ts, &vconv->ts_prev);
    pa->time_delta_ns = (int64_t)delta.secs * 1000000000 + delta.nsecs;
    vconv->ts_prev = pinfo->abs_ts;

    if (vconv->is_dgram)
        track_dgram(vconv, pa, dir, hdr);
    else
        track_operation(vconv, pinfo, pa, dir, hdr);
    if (!vconv->is_dgram)
        pa->state = vconv->state;
}

vsock_packet_analysis_t *vsock_analyze_packet(packet_info *pinfo, vsock_hdr_t *hdr)
{
    vsock_packet_analysis_t *pa;

    /* Only virtio packets carry what connection tracking needs. */
    if (!vsock_analyze || !hdr->has_virtio)
        return NULL;
    pa = record_slot(pinfo->num, !PINFO_FD_VISITED(pinfo));
    if (pa && !pa->conv) {
        if (PINFO_FD_VISITED(pinfo))
            pa = NULL; /* tracking was off on the first pass */
        else
            analyze_first_pass(pinfo, hdr, pa);
    }
    hdr->analysis = pa;
    return pa;
}

const vsock_packet_analysis_t *vsock_get_packet_analysis(packet_info *pinfo)
{
    const vsock_packet_analysis_t *pa = record_slot(pinfo->num, false);

    return pa && pa->conv ? pa : NULL;
}

uint32_t vsock_packet_stream(const vsock_packet_analysis_t *pa)
{
    return pa->conv->stream;
}

/* The sender's credit before an RW (with VSOCK_P_HAS_CREDIT). */
static int64_t packet_peer_free(const vsock_packet_analysis_t *pa, const vsock_hdr_t *hdr)
{
    return (int64_t)pa->peer_buf_alloc - (uint32_t)(pa->bytes_in_flight - hdr->len);
}

vsock_payload_flow_t *vsock_payload_flow(const vsock_packet_analysis_t *pa, uint8_t direction)
{
    return &pa->conv->flow[direction].payload;
}

static void add_frame_link(proto_tree *tree, int hf, tvbuff_t *tvb, uint32_t frame)
{
    if (frame)
        proto_item_set_generated(proto_tree_add_uint(tree, hf, tvb, 0, 0, frame));
}

static void add_analysis_experts(packet_info *pinfo, proto_item *item, const vsock_hdr_t *hdr,
                                 const vsock_packet_analysis_t *pa)
{
    for (size_t i = 0; i < array_length(vsock_flag_experts); i++) {
        if (!(pa->flags & vsock_flag_experts[i].flag))
            continue;
        if (vsock_flag_experts[i].flag == VSOCK_A_CREDIT_VIOLATION)
            expert_add_info_format(pinfo, item, vsock_flag_experts[i].ei,
                                   "RW of %u bytes exceeds the sender's credit of %" PRId64 " bytes",
                                   hdr->len, packet_peer_free(pa, hdr));
        else if (vsock_flag_experts[i].flag == VSOCK_A_REFUSED)
            expert_add_info_format(pinfo, item, vsock_flag_experts[i].ei,
                                   "Connection refused: the REQUEST in frame %u was answered by RST",
                                   pa->links ? pa->links->response_to : 0);
        else
            expert_add_info(pinfo, item, vsock_flag_experts[i].ei);
    }
    /* Backwards, as each tag is prepended: the Info column lists them in table order. */
    for (size_t n = array_length(vsock_flag_experts); n > 0; n--) {
        if ((pa->flags & vsock_flag_experts[n - 1].flag) && vsock_flag_experts[n - 1].tag)
            col_prepend_fence_fstr(pinfo->cinfo, COL_INFO, "[%s] ", vsock_flag_experts[n - 1].tag);
    }
    /* Only a later pass knows that no answer ever came. */
    if (hdr->virtio_op == VIRTIO_VSOCK_OP_REQUEST && !(pa->links && pa->links->response_in) &&
        PINFO_FD_VISITED(pinfo))
        expert_add_info(pinfo, item, &ei_vsock_no_response);
}

void vsock_analysis_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                             const vsock_hdr_t *hdr, const vsock_packet_analysis_t *pa)
{
    proto_item *item;
    proto_tree *analysis_tree;
    nstime_t time_relative, time_delta;
    const vsock_packet_links_t *links = pa->links;

    proto_item_set_generated(proto_tree_add_uint(tree, hf_vsock_stream, tvb, 0, 0, pa->conv->stream));
    if (hdr->virtio_op == VIRTIO_VSOCK_OP_RW) {
        proto_item_set_generated(proto_tree_add_uint64(tree, hf_vsock_seq, tvb, 0, 0, pa->seq));
        proto_item_set_generated(proto_tree_add_uint64(tree, hf_vsock_nxtseq, tvb, 0, 0, pa->seq + hdr->len));
    }
    nstime_delta(&time_relative, &pinfo->abs_ts, &pa->conv->ts_first);
    time_delta.secs = (time_t)(pa->time_delta_ns / 1000000000);
    time_delta.nsecs = (int)(pa->time_delta_ns % 1000000000);
    proto_item_set_generated(proto_tree_add_time(tree, hf_vsock_time_relative, tvb, 0, 0, &time_relative));
    proto_item_set_generated(proto_tree_add_time(tree, hf_vsock_time_delta, tvb, 0, 0, &time_delta));
    if (hdr->type != VIRTIO_VSOCK_TYPE_DGRAM)
        proto_item_set_generated(proto_tree_add_uint(tree, hf_vsock_state, tvb, 0, 0, pa->state));

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

    item = proto_tree_add_item(tree, hf_vsock_analysis, tvb, 0, 0, ENC_NA);
    proto_item_set_generated(item);
    analysis_tree = proto_item_add_subtree(item, ett_vsock_analysis);
    if (hdr->virtio_op == VIRTIO_VSOCK_OP_RW && (pa->pflags & VSOCK_P_HAS_CREDIT)) {
        proto_item_set_generated(proto_tree_add_int64(analysis_tree, hf_vsock_analysis_peer_free, tvb, 0, 0,
                                                      packet_peer_free(pa, hdr)));
        proto_item_set_generated(proto_tree_add_uint(analysis_tree, hf_vsock_analysis_bytes_in_flight, tvb, 0, 0,
                                                     pa->bytes_in_flight));
    }
    add_analysis_experts(pinfo, item, hdr, pa);
}

void vsock_analysis_register(int proto)
{
    static hf_register_info hf[] = {
        { &hf_vsock_stream,
          { "Stream index", "vsock.stream", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_seq,
          { "Sequence offset", "vsock.seq", FT_UINT64, BASE_DEC, NULL, 0x0,
            "Offset of this packet's first payload byte in its direction", HFILL } },
        { &hf_vsock_nxtseq,
          { "Next sequence offset", "vsock.nxtseq", FT_UINT64, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_time_relative,
          { "Time since first packet of the stream", "vsock.time_relative", FT_RELATIVE_TIME, BASE_NONE,
            NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_time_delta,
          { "Time since previous packet of the stream", "vsock.time_delta", FT_RELATIVE_TIME, BASE_NONE,
            NULL, 0x0, NULL, HFILL } },
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
        { &ei_vsock_unknown_connection,
          { "vsock.analysis.unknown_connection", PI_SEQUENCE, PI_NOTE,
            "Packet of a connection whose start was not captured: tracked from here", EXPFILL } },
        { &ei_vsock_credit_violation,
          { "vsock.analysis.credit_violation", PI_PROTOCOL, PI_WARN,
            "RW exceeds the sender's credit", EXPFILL } },
        { &ei_vsock_credit_exhausted,
          { "vsock.analysis.credit_exhausted", PI_SEQUENCE, PI_WARN,
            "Credit exhausted: the sender must wait for a credit update", EXPFILL } },
        { &ei_vsock_credit_reopened,
          { "vsock.analysis.credit_reopened", PI_SEQUENCE, PI_CHAT,
            "Credit reopened: the stalled sender may send again", EXPFILL } },
        { &ei_vsock_fwd_cnt_backwards,
          { "vsock.analysis.fwd_cnt_backwards", PI_PROTOCOL, PI_WARN,
            "fwd_cnt went backwards", EXPFILL } },
        { &ei_vsock_data_after_shutdown,
          { "vsock.analysis.data_after_shutdown", PI_PROTOCOL, PI_WARN,
            "Data after the sender's SHUTDOWN (send)", EXPFILL } },
        { &ei_vsock_data_after_rst,
          { "vsock.analysis.data_after_rst", PI_PROTOCOL, PI_WARN,
            "Data after RST", EXPFILL } },
        { &ei_vsock_data_before_connect,
          { "vsock.analysis.data_before_connect", PI_PROTOCOL, PI_WARN,
            "Data before the connection was established", EXPFILL } },
        { &ei_vsock_stream_reused,
          { "vsock.analysis.reused_ports", PI_SEQUENCE, PI_NOTE,
            "A new connection reuses the CIDs and ports of an earlier stream", EXPFILL } },
        { &ei_vsock_no_response,
          { "vsock.analysis.no_response", PI_SEQUENCE, PI_WARN,
            "REQUEST never answered", EXPFILL } },
        { &ei_vsock_refused,
          { "vsock.analysis.refused", PI_SEQUENCE, PI_WARN,
            "Connection refused", EXPFILL } },
        { &ei_vsock_reset,
          { "vsock.analysis.reset", PI_SEQUENCE, PI_WARN,
            "Connection reset: RST without SHUTDOWN", EXPFILL } },
    };
    expert_module_t *expert;
    module_t *module;

    proto_vsock = proto;
    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert = expert_register_protocol(proto);
    expert_register_field_array(expert, ei, array_length(ei));
    register_init_routine(vsock_analysis_init_routine);
    vsock_connections = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), conv_key_hash, conv_key_equal);

    module = prefs_find_module("vsock");
    if (module == NULL)
        module = prefs_register_protocol(proto, NULL);
    prefs_register_bool_preference(module, "analyze_connections", "Analyze vsock connections",
                                   "Track connections: streams, state, links between requests and answers, "
                                   "credit flow control and the expert info about them",
                                   &vsock_analyze);
}
