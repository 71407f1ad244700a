/* packet-vsock-taps.c
 * Follow vsock Stream, the conversation and endpoint tables, the
 * conversation filter and the "vsock,tree" statistics, in the manner of
 * UDP and DCCP.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/address_types.h>
#include <epan/conversation_filter.h>
#include <epan/conversation_table.h>
#include <epan/follow.h>
#include <epan/stats_tree.h>
#include <epan/tap.h>
#include <wsutil/pint.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-analysis.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-taps.h"

/* What the "vsock" tap carries for each packet. */
typedef struct vsock_tap_info {
    const vsock_packet_info_t *packet;
    /* The sender's and the receiver's CID and port: the connection's sides
     * when it is tracked (a vsock_loopback answer from CID 1 counts for the
     * CID the connection was made to), else the packet's. Copies: a payload
     * dissector may change pinfo->src and pinfo->dst before the taps run. */
    address src;
    address dst;
    uint32_t src_port;
    uint32_t dst_port;
} vsock_tap_info_t;

/* What the follow tap carries: the payload, and who opened its connection
 * (Follow's client, node 0). */
typedef struct vsock_follow_info {
    tvbuff_t *payload_tvb;
    address client;
    uint32_t client_port;
    address server;
    uint32_t server_port;
} vsock_follow_info_t;

static const char st_str_operations[] = "Packets by socket type and operation";
static const char st_str_no_virtio[] = "no virtio header";
static const char st_str_streams[] = "Streams";
static const char st_str_by_state[] = "Streams by state";
static const char st_str_other_streams[] = "Other streams";
/* The first streams seen get rows of their own; the others are summed. A
 * row per stream of a capture of 100,000 short connections was quadratic
 * (a stats tree walks a row's siblings to append one) and, printed, most of
 * the run; Statistics > Conversations lists every stream. */
#define STATS_STREAMS_LISTED 256

static int vsock_tap = -1;
static int vsock_follow_tap = -1;
static int vsock_cid_address_type = -1;

/* Per statistics tree: the streams seen and the state each one's "State"
 * rows show. Keyed by the stats_tree, as several trees (GUI windows) can be
 * open at once. */
typedef struct vsock_stats_data {
    GHashTable *streams;         /* stream -> its vsock_stats_stream_t */
    uint32_t listed;             /* streams with rows of their own */
    uint32_t state_counts[VSOCK_STATE_RESET + 1]; /* streams by their latest state */
    uint32_t last_frame;         /* a retap starts over from frame 1 */
} vsock_stats_data_t;

typedef struct vsock_stats_stream {
    bool listed;
    uint8_t state;               /* state + 1; 0: none yet */
} vsock_stats_stream_t;

static GHashTable *vsock_stats_trees;

/* A CID of the plugin's address type, or false for any other address. */
static bool get_address_cid(const address *addr, uint64_t *cid)
{
    if (addr->type != vsock_cid_address_type || addr->len != 8)
        return false;
    *cid = pletoh64(addr->data);
    return true;
}

static char *stream_filter(uint32_t stream)
{
    return ws_strdup_printf("vsock.stream eq %u", stream);
}

/* ---- Follow vsock Stream ---- */

/* The stream of the selected packet, as connection tracking recorded it:
 * looked up, never created. */
static char *vsock_follow_conv_filter(epan_dissect_t *edt _U_, packet_info *pinfo,
                                      unsigned *stream, unsigned *sub_stream _U_)
{
    const vsock_conv_packet_t *cp = vsock_conversation_packet(pinfo);

    if (cp == NULL)
        return NULL;
    *stream = vsock_conversation_stream(cp->conv);
    return stream_filter(*stream);
}

static char *vsock_follow_index_filter(unsigned stream, unsigned sub_stream _U_)
{
    return stream_filter(stream);
}

/* Ports come as int; vsock ports are 32-bit unsigned, so cast them back. */
static char *vsock_follow_address_filter(address *src_addr, address *dst_addr, int src_port, int dst_port)
{
    uint64_t src_cid, dst_cid;

    if (!get_address_cid(src_addr, &src_cid) || !get_address_cid(dst_addr, &dst_cid))
        return NULL;
    return ws_strdup_printf("((vsock.src_cid eq %" PRIu64 " and vsock.src_port eq %u) and "
                            "(vsock.dst_cid eq %" PRIu64 " and vsock.dst_port eq %u)) or "
                            "((vsock.src_cid eq %" PRIu64 " and vsock.src_port eq %u) and "
                            "(vsock.dst_cid eq %" PRIu64 " and vsock.dst_port eq %u))",
                            src_cid, (uint32_t)src_port, dst_cid, (uint32_t)dst_port,
                            dst_cid, (uint32_t)dst_port, src_cid, (uint32_t)src_port);
}

/* No service names exist for vsock ports. */
static char *vsock_port_to_display(wmem_allocator_t *allocator, unsigned port)
{
    return wmem_strdup_printf(allocator, "%u", port);
}

/* ---- Conversation filter ---- */

static vsock_cb_bool vsock_filter_valid(VSOCK_CONV_FILTER_ARGS(pinfo))
{
    return proto_is_frame_protocol(pinfo->layers, "vsock") && vsock_conversation_packet(pinfo) != NULL;
}

static char *vsock_build_filter(VSOCK_CONV_FILTER_ARGS(pinfo))
{
    const vsock_conv_packet_t *cp = vsock_conversation_packet(pinfo);

    return cp ? stream_filter(vsock_conversation_stream(cp->conv)) : NULL;
}

/* ---- Conversation and endpoint tables ---- */

static const char *vsock_filter_field(conv_filter_type_e filter)
{
    switch (filter) {
    case CONV_FT_SRC_ADDRESS:
        return "vsock.src_cid";
    case CONV_FT_DST_ADDRESS:
        return "vsock.dst_cid";
    case CONV_FT_ANY_ADDRESS:
        return "vsock.cid";
    case CONV_FT_SRC_PORT:
        return "vsock.src_port";
    case CONV_FT_DST_PORT:
        return "vsock.dst_port";
    case CONV_FT_ANY_PORT:
        return "vsock.port";
    default:
        return CONV_FILTER_INVALID;
    }
}

static const char *vsock_conv_get_filter_type(conv_item_t *conv _U_, conv_filter_type_e filter)
{
    return vsock_filter_field(filter);
}

static ct_dissector_info_t vsock_ct_dissector_info = { &vsock_conv_get_filter_type };

static const char *vsock_endpoint_get_filter_type(endpoint_item_t *endpoint _U_, conv_filter_type_e filter)
{
    return vsock_filter_field(filter);
}

static et_dissector_info_t vsock_endpoint_dissector_info = { &vsock_endpoint_get_filter_type };

/* One row per stream (the stream index is the conversation id, so a
 * connection that reuses the ports of a closed one gets its own row).
 * Packets without connection tracking fall back to addresses and ports.
 * CONVERSATION_NONE: Wireshark has no vsock conversation type, and the TCP
 * or UDP types would resolve vsock ports as TCP/UDP services. */
static tap_packet_status vsock_conversation_table_packet(void *pct, packet_info *pinfo, epan_dissect_t *edt _U_,
                                                         const void *data, tap_flags_t flags)
{
    conv_hash_t *hash = (conv_hash_t *)pct;
    const vsock_tap_info_t *info = (const vsock_tap_info_t *)data;
    const vsock_conv_packet_t *cp = info->packet->conv;
    conv_id_t conv_id = cp ? (conv_id_t)vsock_conversation_stream(cp->conv) : CONV_ID_UNSET;

    hash->flags = flags;
    add_conversation_table_data_with_conv_id(hash, &info->src, &info->dst, info->src_port, info->dst_port,
                                             conv_id, 1, info->packet->frame_len, &pinfo->rel_ts, &pinfo->abs_ts,
                                             &vsock_ct_dissector_info, CONVERSATION_NONE);
    return TAP_PACKET_REDRAW;
}

/* One row per CID and port; each packet counts for its sender and its receiver. */
static tap_packet_status vsock_endpoint_packet(void *pit, packet_info *pinfo _U_, epan_dissect_t *edt _U_,
                                               const void *data, tap_flags_t flags)
{
    conv_hash_t *hash = (conv_hash_t *)pit;
    const vsock_tap_info_t *info = (const vsock_tap_info_t *)data;

    hash->flags = flags;
    add_endpoint_table_data(hash, &info->src, info->src_port, true, 1, info->packet->frame_len,
                            &vsock_endpoint_dissector_info, ENDPOINT_NONE);
    add_endpoint_table_data(hash, &info->dst, info->dst_port, false, 1, info->packet->frame_len,
                            &vsock_endpoint_dissector_info, ENDPOINT_NONE);
    return TAP_PACKET_REDRAW;
}

/* ---- Statistics tree: -z vsock,tree ---- */

static void vsock_stats_data_free(void *p)
{
    vsock_stats_data_t *data = (vsock_stats_data_t *)p;

    g_hash_table_destroy(data->streams);
    g_free(data);
}

static void vsock_stats_tree_init(stats_tree *st)
{
    vsock_stats_data_t *data = g_new0(vsock_stats_data_t, 1);

    data->streams = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    if (vsock_stats_trees == NULL)
        vsock_stats_trees = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, vsock_stats_data_free);
    g_hash_table_replace(vsock_stats_trees, st, data);

    stats_tree_create_node(st, st_str_operations, 0, STAT_DT_INT, true);
    stats_tree_create_node(st, st_str_streams, 0, STAT_DT_INT, true);
    stats_tree_create_node(st, st_str_by_state, stats_tree_parent_id_by_name(st, st_str_streams), STAT_DT_INT, true);
}

static void vsock_stats_tree_cleanup(stats_tree *st)
{
    if (vsock_stats_trees)
        g_hash_table_remove(vsock_stats_trees, st);
}

/* The tree's memory of stream states. A reset (retap) zeroes the counters
 * without calling init: the frame numbers starting over tell. */
static vsock_stats_data_t *stats_data_for_packet(stats_tree *st, const packet_info *pinfo)
{
    vsock_stats_data_t *data = vsock_stats_trees ? g_hash_table_lookup(vsock_stats_trees, st) : NULL;

    if (data == NULL)
        return NULL;
    if (pinfo->num <= data->last_frame) {
        g_hash_table_remove_all(data->streams);
        data->listed = 0;
        memset(data->state_counts, 0, sizeof data->state_counts);
    }
    data->last_frame = pinfo->num;
    return data;
}

/* Packets by socket type, then virtio operation; vsockmon operation for
 * packets without a virtio header. */
static void stats_tick_operation(stats_tree *st, packet_info *pinfo, const vsock_packet_info_t *packet)
{
    int parent = stats_tree_parent_id_by_name(st, st_str_operations);
    int type_node;

    tick_stat_node(st, st_str_operations, 0, true);
    if (!packet->has_virtio) {
        type_node = tick_stat_node(st, st_str_no_virtio, parent, true);
        tick_stat_node(st, vsock_val_to_str(pinfo->pool, packet->op, vsockmon_op_vals, "op %u"),
                       type_node, false);
        return;
    }
    type_node = tick_stat_node(st, vsock_val_to_str(pinfo->pool, packet->type, virtio_type_short_vals, "type %u"),
                               parent, true);
    tick_stat_node(st, vsock_val_to_str(pinfo->pool, packet->virtio_op, virtio_op_short_vals, "OP %u"),
                   type_node, false);
}

/* "Stream 0: 3:50000 <-> 2:1234", A (the connecting side, or the side seen
 * first) on the left. */
static const char *stats_stream_name(packet_info *pinfo, const vsock_conversation_t *conv)
{
    uint64_t cid_a, cid_b;
    uint32_t port_a, port_b;

    vsock_conversation_endpoint(conv, 0, &cid_a, &port_a);
    vsock_conversation_endpoint(conv, 1, &cid_b, &port_b);
    return wmem_strdup_printf(pinfo->pool, "Stream %u: %" PRIu64 ":%u <-> %" PRIu64 ":%u",
                              vsock_conversation_stream(conv), cid_a, port_a, cid_b, port_b);
}

static const char *state_row(packet_info *pinfo, unsigned state)
{
    return wmem_strdup_printf(pinfo->pool, "State %s", val_to_str_const(state, vsock_state_vals, "?"));
}

/* A stream's latest state: counted under "Streams by state" and, for a listed
 * stream, as its one "State" row that counts 1 (the states it went through
 * stay listed with 0). */
static void stats_set_state(stats_tree *st, packet_info *pinfo, vsock_stats_data_t *data,
                            vsock_stats_stream_t *stream, int stream_node, uint8_t state)
{
    const int by_state = stats_tree_parent_id_by_name(st, st_str_by_state);
    const unsigned previous = stream->state;

    if (previous == (unsigned)state + 1)
        return;
    if (previous == 0)  /* one more stream with a state */
        increase_stat_node(st, st_str_by_state, stats_tree_parent_id_by_name(st, st_str_streams), false, 1);
    if (previous != 0) {
        data->state_counts[previous - 1]--;
        set_stat_node(st, val_to_str_const(previous - 1, vsock_state_vals, "?"), by_state, false,
                      (int)data->state_counts[previous - 1]);
        if (stream->listed)
            set_stat_node(st, state_row(pinfo, previous - 1), stream_node, false, 0);
    }
    data->state_counts[state]++;
    set_stat_node(st, val_to_str_const(state, vsock_state_vals, "?"), by_state, false,
                  (int)data->state_counts[state]);
    if (stream->listed)
        set_stat_node(st, state_row(pinfo, state), stream_node, false, 1);
    stream->state = (uint8_t)(state + 1);
}

/* The stream's record, made when it is first seen: listed while there is room. */
static vsock_stats_stream_t *stats_stream(vsock_stats_data_t *data, uint32_t stream)
{
    vsock_stats_stream_t *record = g_hash_table_lookup(data->streams, GUINT_TO_POINTER(stream));

    if (!record) {
        record = g_new0(vsock_stats_stream_t, 1);
        record->listed = data->listed < STATS_STREAMS_LISTED;
        data->listed += record->listed;
        g_hash_table_insert(data->streams, GUINT_TO_POINTER(stream), record);
    }
    return record;
}

/* Per listed stream (the others summed): packets and payload bytes each way,
 * and the state. */
static void stats_tick_stream(stats_tree *st, packet_info *pinfo, const vsock_packet_info_t *packet,
                              vsock_stats_data_t *data)
{
    const vsock_conv_packet_t *cp = packet->conv;
    const char *packets = cp->direction == 0 ? "Packets A->B" : "Packets B->A";
    const char *bytes = cp->direction == 0 ? "Payload bytes A->B" : "Payload bytes B->A";
    vsock_stats_stream_t *stream = stats_stream(data, vsock_conversation_stream(cp->conv));
    const int streams_node = stats_tree_parent_id_by_name(st, st_str_streams);
    uint8_t state;
    int node;

    if (stream->listed)
        node = tick_stat_node(st, stats_stream_name(pinfo, cp->conv), streams_node, true);
    else
        node = tick_stat_node(st, st_str_other_streams, streams_node, true);
    increase_stat_node(st, packets, node, false, 1);
    increase_stat_node(st, bytes, node, false, (int)packet->payload_len);
    if (packet->type != VIRTIO_VSOCK_TYPE_DGRAM && vsock_analysis_state(pinfo, &state))
        stats_set_state(st, pinfo, data, stream, node, state);
}

static tap_packet_status vsock_stats_tree_packet(stats_tree *st, packet_info *pinfo, epan_dissect_t *edt _U_,
                                                 const void *p, tap_flags_t flags _U_)
{
    const vsock_tap_info_t *info = (const vsock_tap_info_t *)p;
    vsock_stats_data_t *data = stats_data_for_packet(st, pinfo);

    stats_tick_operation(st, pinfo, info->packet);
    if (info->packet->conv && data) {
        stats_tick_stream(st, pinfo, info->packet, data);
        /* The tree only counts the streams already seen. */
        set_stat_node(st, st_str_streams, 0, true, (int)g_hash_table_size(data->streams));
    }
    return TAP_PACKET_REDRAW;
}

/* ---- Follow's tap listener ---- */

/* Wireshark's listener takes the sender of the first payload it sees as the
 * client (node 0); TCP's Follow names the side that sent the SYN. Set the
 * connection's opener first, so a server that speaks first (an SSH banner)
 * is not called the client. */
static tap_packet_status vsock_follow_tap_listener(void *tapdata, packet_info *pinfo, epan_dissect_t *edt,
                                                   const void *data, tap_flags_t flags)
{
    follow_info_t *follow_info = (follow_info_t *)tapdata;
    const vsock_follow_info_t *info = (const vsock_follow_info_t *)data;

    if (follow_info->client_port == 0 && info->client.type != AT_NONE) {
        copy_address(&follow_info->client_ip, &info->client);
        follow_info->client_port = info->client_port;
        copy_address(&follow_info->server_ip, &info->server);
        follow_info->server_port = info->server_port;
    }
    return follow_tvb_tap_listener(tapdata, pinfo, edt, info->payload_tvb, flags);
}

/* ---- Registration and the per-packet hook ---- */

void vsock_taps_register(int proto, int cid_address_type)
{
    vsock_cid_address_type = cid_address_type;
    register_conversation_table(proto, false, vsock_conversation_table_packet, vsock_endpoint_packet);
    vsock_register_conversation_filter("vsock", "vsock", vsock_filter_valid, vsock_build_filter);
    vsock_register_follow_stream(proto, "vsock_follow", vsock_follow_conv_filter,
                                 vsock_follow_index_filter, vsock_follow_address_filter,
                                 vsock_port_to_display, vsock_follow_tap_listener);
    /* Sorted by name by default: rows keep their order from run to run. */
    stats_tree_register_plugin("vsock", "vsock", "vsock operations and streams",
                               ST_SORT_COL_NAME << ST_FLG_SRTCOL_SHIFT,
                               vsock_stats_tree_packet, vsock_stats_tree_init, vsock_stats_tree_cleanup);
}

void vsock_taps_handoff(void)
{
    vsock_tap = register_tap("vsock");
    vsock_follow_tap = register_tap("vsock_follow");
}

/* A CID address in pinfo->pool (the address type keeps CIDs little-endian). */
static void set_cid_address(packet_info *pinfo, address *addr, uint64_t cid)
{
    uint64_t *data = wmem_new(pinfo->pool, uint64_t);

    *data = GUINT64_TO_LE(cid);
    set_address(addr, vsock_cid_address_type, 8, data);
}

/* The endpoints of a side of the packet's connection. */
static void set_side(packet_info *pinfo, const vsock_conv_packet_t *cp, uint8_t side, address *addr, uint32_t *port)
{
    uint64_t cid;

    vsock_conversation_endpoint(cp->conv, side, &cid, port);
    set_cid_address(pinfo, addr, cid);
}

static void queue_follow(packet_info *pinfo, const vsock_packet_info_t *packet, tvbuff_t *payload_tvb)
{
    vsock_follow_info_t *info = wmem_new0(pinfo->pool, vsock_follow_info_t);

    info->payload_tvb = payload_tvb;
    if (packet->conv) {
        set_side(pinfo, packet->conv, 0, &info->client, &info->client_port);
        set_side(pinfo, packet->conv, 1, &info->server, &info->server_port);
    }
    tap_queue_packet(vsock_follow_tap, pinfo, info);
}

void vsock_taps_queue(packet_info *pinfo, const vsock_packet_info_t *packet, tvbuff_t *payload_tvb)
{
    const vsock_conv_packet_t *cp = packet->conv;
    vsock_tap_info_t *info;

    /* Follow shows application bytes only: RW payloads. */
    if (payload_tvb && have_tap_listener(vsock_follow_tap))
        queue_follow(pinfo, packet, payload_tvb);

    if (!have_tap_listener(vsock_tap))
        return;
    info = wmem_new0(pinfo->pool, vsock_tap_info_t);
    info->packet = packet;
    if (cp) {
        set_side(pinfo, cp, cp->direction, &info->src, &info->src_port);
        set_side(pinfo, cp, (uint8_t)(1 - cp->direction), &info->dst, &info->dst_port);
    } else {
        copy_address_shallow(&info->src, &pinfo->src);
        copy_address_shallow(&info->dst, &pinfo->dst);
        info->src_port = packet->src_port;
        info->dst_port = packet->dst_port;
    }
    tap_queue_packet(vsock_tap, pinfo, info);
}
