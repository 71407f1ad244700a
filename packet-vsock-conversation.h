/* packet-vsock-conversation.h
 * Connection tracking: which connection (stream) and which direction each
 * packet belongs to, and where its payload lies in that direction.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_CONVERSATION_H
#define PACKET_VSOCK_CONVERSATION_H

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>

#include "packet-vsock.h"

typedef struct vsock_conversation vsock_conversation_t;

/* Facts of a packet about its connection. */
#define VSOCK_CONV_P_MIDSTREAM      0x01 /* first packet seen of a connection, not its start */
#define VSOCK_CONV_P_REUSED_PORTS   0x02 /* opens a stream on the endpoints of an earlier one */
#define VSOCK_CONV_P_STREAM_START   0x04 /* payload that starts its direction, the connection's start seen */
#define VSOCK_CONV_P_LOOPBACK_ALIAS 0x08 /* paired through vsock_loopback's CID 1 (see the .c) */
#define VSOCK_CONV_P_LOOPBACK_FIRST 0x10 /* ... and the first such packet of the stream */

/* One per tracked packet, stored on the first pass and read on every pass
 * (24 bytes: 48 bits of offset are 256 TiB in one direction, more than a
 * capture holds). */
struct vsock_conv_packet {
    vsock_conversation_t *conv;
    int64_t time_delta_ns;   /* since the previous packet of the stream */
    uint64_t seq : 48;       /* offset of the packet's first payload byte in its direction */
    uint64_t direction : 1;  /* 0: from the connecting side (or the side seen first) */
    uint64_t flags : 8;      /* VSOCK_CONV_P_* */
};

void vsock_conversation_register(int proto, expert_module_t *expert);

/* Tracks the packet on the first pass; on every pass returns its record, or
 * NULL for a packet that belongs to no connection (no virtio header and no
 * "no info" transport). */
const vsock_conv_packet_t *vsock_conversation_track(packet_info *pinfo, const vsock_packet_info_t *packet);

/* The record of the packet being dissected (NULL: none), for taps and filters. */
const vsock_conv_packet_t *vsock_conversation_packet(packet_info *pinfo);

/* vsock.stream, the offsets and times of the packet. */
void vsock_conversation_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                 const vsock_packet_info_t *packet, const vsock_conv_packet_t *cp);

uint32_t vsock_conversation_stream(const vsock_conversation_t *conv);

/* The CID and port of one side (0: the connecting side, or the side seen first). */
void vsock_conversation_endpoint(const vsock_conversation_t *conv, uint8_t side, uint64_t *cid, uint32_t *port);

/* Other modules keep their per-connection state with the connection, each
 * in a slot of its own taken at registration. */
int vsock_conversation_new_data_slot(void);
void *vsock_conversation_get_data(const vsock_conversation_t *conv, int slot);
void vsock_conversation_set_data(vsock_conversation_t *conv, int slot, void *data);

#endif /* PACKET_VSOCK_CONVERSATION_H */
