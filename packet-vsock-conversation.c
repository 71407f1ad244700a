/* packet-vsock-conversation.c
 * Connection tracking: a stream index per connection, the direction of each
 * packet and the offset of its payload in that direction, as tcp.stream and
 * TCP's relative sequence numbers. Always on: reassembly, the payload
 * hand-off, Follow and the conversation table build on it.
 *
 * The first pass finds or opens the connection of each packet and stores one
 * record per packet; later passes only read the records.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-records.h"

#define DATA_SLOTS 4

/* Both directions of a connection share one key: the lower endpoint first. */
typedef struct vsock_conv_key {
    uint64_t cid[2];
    uint32_t port[2];
} vsock_conv_key_t;

struct vsock_conversation {
    vsock_conv_key_t key;
    uint64_t cid[2];         /* side 0: the connecting side, or the side seen first */
    uint32_t port[2];
    uint64_t seq[2];         /* payload bytes each side sent since tracking began */
    uint32_t stream;
    bool start_seen;         /* the connection's opening packet was captured */
    bool is_dgram;
    bool answer_pending;     /* "no info": the opening CONNECT awaits the peer's */
    bool loopback_paired;    /* a packet was paired through vsock_loopback's CID 1 */
    nstime_t ts_first;
    nstime_t ts_prev;
    void *data[DATA_SLOTS];  /* other modules' state (vsock_conversation_new_data_slot) */
};

static uint32_t vsock_stream_count;
static int data_slot_count;
/* The current connection of each pair of endpoints. Looked up for every
 * packet, so keyed by the endpoints themselves: Wireshark's generic
 * conversation table (find_conversation_full) hashes element lists and
 * cost 14 % of a read. */
static wmem_map_t *vsock_connections;
/* vsock_loopback carries a connection to the local CID (CID 2 on a host with
 * vhost_vsock and no guest transport, a guest's own CID) and stamps its own
 * CID 1 as the source of every packet: the REQUEST goes 1:x -> 2:P, the
 * answers 1:P -> 1:x. Such connections are also found under the key of
 * their answers. */
static wmem_map_t *vsock_loopback_connections;
/* The connections of recent packets, by key hash: a capture interleaves a
 * few busy connections, and in a map of tens of thousands of connections
 * every lookup missed the processor's caches (bucket, item, key). */
#define RECENT_CONNECTIONS 256
static vsock_conversation_t *recent_connections[RECENT_CONNECTIONS];
static vsock_records_t packet_records = VSOCK_RECORDS_INIT(vsock_conv_packet_t);

static int hf_vsock_stream = -1;
static int hf_vsock_seq = -1;
static int hf_vsock_nxtseq = -1;
static int hf_vsock_time_relative = -1;
static int hf_vsock_time_delta = -1;

static expert_field ei_vsock_loopback_paired = EI_INIT;

static void vsock_conversation_init(void)
{
    vsock_stream_count = 0;
    memset(recent_connections, 0, sizeof recent_connections);
    vsock_records_reset(&packet_records);
}

static void make_key(uint64_t cid_a, uint32_t port_a, uint64_t cid_b, uint32_t port_b, vsock_conv_key_t *key)
{
    const bool a_first = cid_a < cid_b || (cid_a == cid_b && port_a <= port_b);

    key->cid[0] = a_first ? cid_a : cid_b;
    key->port[0] = a_first ? port_a : port_b;
    key->cid[1] = a_first ? cid_b : cid_a;
    key->port[1] = a_first ? port_b : port_a;
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

/* The payload bytes a packet adds to its direction. */
static uint32_t data_len(const vsock_packet_info_t *packet)
{
    if (packet->has_virtio)
        return packet->virtio_op == VIRTIO_VSOCK_OP_RW ? packet->len : 0;
    return packet->op == VSOCKMON_OP_PAYLOAD ? packet->payload_len : 0;
}

static bool is_tracked(const vsock_packet_info_t *packet)
{
    return packet->has_virtio || packet->transport == VSOCKMON_TRANSPORT_NO_INFO;
}

/* Whether the packet opens a new connection: a REQUEST always does; without
 * a virtio header, a CONNECT that is not the answer to the pending one. */
static bool opens_connection(const vsock_packet_info_t *packet, const vsock_conversation_t *current)
{
    if (packet->has_virtio)
        return packet->virtio_op == VIRTIO_VSOCK_OP_REQUEST;
    if (packet->op != VSOCKMON_OP_CONNECT)
        return false;
    return !(current && current->answer_pending &&
             !(packet->src_cid == current->cid[0] && packet->src_port == current->port[0]));
}

static vsock_conversation_t *new_conversation(packet_info *pinfo, const vsock_packet_info_t *packet,
                                              const vsock_conv_key_t *key, bool opening)
{
    vsock_conversation_t *conv = wmem_new0(wmem_file_scope(), vsock_conversation_t);

    conv->key = *key;
    conv->cid[0] = packet->src_cid;
    conv->port[0] = packet->src_port;
    conv->cid[1] = packet->dst_cid;
    conv->port[1] = packet->dst_port;
    conv->stream = vsock_stream_count++;
    conv->is_dgram = packet->has_virtio && packet->type == VIRTIO_VSOCK_TYPE_DGRAM;
    conv->start_seen = opening;
    conv->answer_pending = opening && !packet->has_virtio;
    conv->ts_first = pinfo->abs_ts;
    conv->ts_prev = pinfo->abs_ts;
    wmem_map_insert(vsock_connections, &conv->key, conv);
    /* Opened from CID 1 to another CID: only vsock_loopback does that. */
    if (opening && packet->src_cid == VMADDR_CID_LOCAL && packet->dst_cid != VMADDR_CID_LOCAL) {
        vsock_conv_key_t *answer_key = wmem_new(wmem_file_scope(), vsock_conv_key_t);

        make_key(VMADDR_CID_LOCAL, packet->dst_port, VMADDR_CID_LOCAL, packet->src_port, answer_key);
        wmem_map_insert(vsock_loopback_connections, answer_key, conv);
    }
    return conv;
}

/* Finds the packet's connection, or opens a stream: on its first packet, and
 * on every packet that opens a connection. */
static vsock_conversation_t *get_conversation(packet_info *pinfo, const vsock_packet_info_t *packet,
                                              vsock_conv_packet_t *cp)
{
    vsock_conv_key_t key;
    vsock_conversation_t *conv, **recent;

    make_key(packet->src_cid, packet->src_port, packet->dst_cid, packet->dst_port, &key);
    recent = &recent_connections[conv_key_hash(&key) % RECENT_CONNECTIONS];
    if (*recent && conv_key_equal(&(*recent)->key, &key))
        conv = *recent;
    else
        conv = (vsock_conversation_t *)wmem_map_lookup(vsock_connections, &key);

    if (opens_connection(packet, conv)) {
        if (conv)
            cp->flags |= VSOCK_CONV_P_REUSED_PORTS;
        conv = new_conversation(pinfo, packet, &key, true);
    } else if (!conv && packet->src_cid == VMADDR_CID_LOCAL && packet->dst_cid == VMADDR_CID_LOCAL &&
               (conv = (vsock_conversation_t *)wmem_map_lookup(vsock_loopback_connections, &key)) != NULL) {
        cp->flags |= VSOCK_CONV_P_LOOPBACK_ALIAS;
        if (!conv->loopback_paired)
            cp->flags |= VSOCK_CONV_P_LOOPBACK_FIRST;
        conv->loopback_paired = true;
        return conv;
    } else if (!conv) {
        conv = new_conversation(pinfo, packet, &key, false);
        if (!conv->is_dgram)
            cp->flags |= VSOCK_CONV_P_MIDSTREAM;
    }
    *recent = conv;
    return conv;
}

static void track_first_pass(packet_info *pinfo, const vsock_packet_info_t *packet, vsock_conv_packet_t *cp)
{
    vsock_conversation_t *conv = get_conversation(pinfo, packet, cp);
    const uint8_t direction = (packet->src_cid == conv->cid[0] && packet->src_port == conv->port[0]) ? 0 : 1;
    const uint32_t len = data_len(packet);
    nstime_t delta;

    cp->conv = conv;
    cp->direction = direction;
    cp->seq = conv->seq[direction];
    if (conv->start_seen && !conv->is_dgram && cp->seq == 0 &&
        (packet->has_virtio ? packet->virtio_op == VIRTIO_VSOCK_OP_RW : len > 0))
        cp->flags |= VSOCK_CONV_P_STREAM_START;
    conv->seq[direction] += len;
    if (direction == 1 && !packet->has_virtio && packet->op == VSOCKMON_OP_CONNECT)
        conv->answer_pending = false;

    nstime_delta(&delta, &pinfo->abs_ts, &conv->ts_prev);
    cp->time_delta_ns = (int64_t)delta.secs * 1000000000 + delta.nsecs;
    conv->ts_prev = pinfo->abs_ts;
}

const vsock_conv_packet_t *vsock_conversation_track(packet_info *pinfo, const vsock_packet_info_t *packet)
{
    vsock_conv_packet_t *cp;

    if (!is_tracked(packet))
        return NULL;
    cp = (vsock_conv_packet_t *)vsock_records_get(&packet_records, pinfo->num, !PINFO_FD_VISITED(pinfo));
    if (cp && !cp->conv && !PINFO_FD_VISITED(pinfo))
        track_first_pass(pinfo, packet, cp);
    return cp && cp->conv ? cp : NULL;
}

const vsock_conv_packet_t *vsock_conversation_packet(packet_info *pinfo)
{
    const vsock_conv_packet_t *cp =
        (const vsock_conv_packet_t *)vsock_records_get(&packet_records, pinfo->num, false);

    return cp && cp->conv ? cp : NULL;
}

uint32_t vsock_conversation_stream(const vsock_conversation_t *conv)
{
    return conv->stream;
}

void vsock_conversation_endpoint(const vsock_conversation_t *conv, uint8_t side, uint64_t *cid, uint32_t *port)
{
    *cid = conv->cid[side];
    *port = conv->port[side];
}

int vsock_conversation_new_data_slot(void)
{
    DISSECTOR_ASSERT(data_slot_count < DATA_SLOTS);
    return data_slot_count++;
}

void *vsock_conversation_get_data(const vsock_conversation_t *conv, int slot)
{
    return conv->data[slot];
}

void vsock_conversation_set_data(vsock_conversation_t *conv, int slot, void *data)
{
    conv->data[slot] = data;
}

void vsock_conversation_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                 const vsock_packet_info_t *packet, const vsock_conv_packet_t *cp)
{
    const vsock_conversation_t *conv = cp->conv;
    proto_item *item;
    nstime_t time_relative, time_delta;

    /* Fields a tree that only filters does not ask for are not added (see
     * add_cid() in packet-vsock.c). */
    item = tree;
    if (proto_field_is_referenced(tree, hf_vsock_stream)) {
        item = proto_tree_add_uint(tree, hf_vsock_stream, tvb, 0, 0, conv->stream);
        proto_item_set_generated(item);
    }
    if (cp->flags & VSOCK_CONV_P_LOOPBACK_FIRST)
        expert_add_info_format(pinfo, item, &ei_vsock_loopback_paired,
                               "Answer from CID 1 (vsock_loopback) paired with the connection from %"
                               PRIu64 ":%u to %" PRIu64 ":%u",
                               conv->cid[0], conv->port[0], conv->cid[1], conv->port[1]);
    if (packet->has_virtio ? packet->virtio_op == VIRTIO_VSOCK_OP_RW : packet->op == VSOCKMON_OP_PAYLOAD) {
        if (proto_field_is_referenced(tree, hf_vsock_seq))
            proto_item_set_generated(proto_tree_add_uint64(tree, hf_vsock_seq, tvb, 0, 0, cp->seq));
        if (proto_field_is_referenced(tree, hf_vsock_nxtseq))
            proto_item_set_generated(proto_tree_add_uint64(tree, hf_vsock_nxtseq, tvb, 0, 0,
                                                           cp->seq + data_len(packet)));
    }
    if (proto_field_is_referenced(tree, hf_vsock_time_relative)) {
        nstime_delta(&time_relative, &pinfo->abs_ts, &conv->ts_first);
        proto_item_set_generated(proto_tree_add_time(tree, hf_vsock_time_relative, tvb, 0, 0, &time_relative));
    }
    if (proto_field_is_referenced(tree, hf_vsock_time_delta)) {
        time_delta.secs = (time_t)(cp->time_delta_ns / 1000000000);
        time_delta.nsecs = (int)(cp->time_delta_ns % 1000000000);
        proto_item_set_generated(proto_tree_add_time(tree, hf_vsock_time_delta, tvb, 0, 0, &time_delta));
    }
}

void vsock_conversation_register(int proto, expert_module_t *expert)
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
    };
    static ei_register_info ei[] = {
        { &ei_vsock_loopback_paired,
          { "vsock.loopback.paired", PI_SEQUENCE, PI_NOTE,
            "Answer from CID 1 (vsock_loopback) paired with a connection to another CID", EXPFILL } },
    };

    proto_register_field_array(proto, hf, array_length(hf));
    expert_register_field_array(expert, ei, array_length(ei));
    register_init_routine(vsock_conversation_init);
    vsock_connections = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), conv_key_hash, conv_key_equal);
    vsock_loopback_connections = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(),
                                                        conv_key_hash, conv_key_equal);
}
