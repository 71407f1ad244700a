/* packet-vsock.h
 * The vsock wire format (vsockmon and virtio-vsock headers) and what the
 * dissection of one packet knows, which every module of the plugin reads.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_H
#define PACKET_VSOCK_H

#include <epan/packet.h>

/* vsockmon header (include/uapi/linux/vsockmon.h), little-endian. */
#define VSOCKMON_HDR_LEN 32

enum vsockmon_op {
    VSOCKMON_OP_UNKNOWN    = 0,
    VSOCKMON_OP_CONNECT    = 1,
    VSOCKMON_OP_DISCONNECT = 2,
    VSOCKMON_OP_CONTROL    = 3,
    VSOCKMON_OP_PAYLOAD    = 4
};

enum vsockmon_transport {
    VSOCKMON_TRANSPORT_UNKNOWN = 0,
    VSOCKMON_TRANSPORT_NO_INFO = 1,
    VSOCKMON_TRANSPORT_VIRTIO  = 2
};

/* virtio-vsock transport header (include/uapi/linux/virtio_vsock.h). */
#define VIRTIO_VSOCK_HDR_LEN 44

enum virtio_vsock_type {
    VIRTIO_VSOCK_TYPE_STREAM    = 1,
    VIRTIO_VSOCK_TYPE_SEQPACKET = 2,
    VIRTIO_VSOCK_TYPE_DGRAM     = 3
};

enum virtio_vsock_op {
    VIRTIO_VSOCK_OP_INVALID        = 0,
    VIRTIO_VSOCK_OP_REQUEST        = 1,
    VIRTIO_VSOCK_OP_RESPONSE       = 2,
    VIRTIO_VSOCK_OP_RST            = 3,
    VIRTIO_VSOCK_OP_SHUTDOWN       = 4,
    VIRTIO_VSOCK_OP_RW             = 5,
    VIRTIO_VSOCK_OP_CREDIT_UPDATE  = 6,
    VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7
};

/* Flags of SHUTDOWN, and of RW on seqpacket connections. */
#define VIRTIO_VSOCK_SHUTDOWN_RCV  0x00000001
#define VIRTIO_VSOCK_SHUTDOWN_SEND 0x00000002
#define VIRTIO_VSOCK_SEQ_EOM       0x00000001
#define VIRTIO_VSOCK_SEQ_EOR       0x00000002

/* Well-known CIDs. */
#define VMADDR_CID_HYPERVISOR 0
#define VMADDR_CID_LOCAL      1
#define VMADDR_CID_HOST       2
#define VMADDR_CID_ANY        0xFFFFFFFFu

/* Value names shared by the Info column and the statistics (packet-vsock.c). */
extern const value_string vsockmon_op_vals[];
extern const value_string virtio_type_short_vals[];
extern const value_string virtio_op_short_vals[];

typedef struct vsock_conv_packet vsock_conv_packet_t;

/* What the dissection of one packet knows: its headers as read (in
 * pinfo->pool), and connection tracking's record of it. Filled by
 * packet-vsock.c; the other modules only read it. */
typedef struct vsock_packet_info {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t op;            /* vsockmon op */
    uint32_t transport;
    uint32_t trans_len;
    bool has_virtio;        /* the virtio fields below were read */
    uint32_t type;
    uint32_t virtio_op;
    uint32_t flags;
    uint32_t len;           /* virtio len */
    uint32_t buf_alloc;
    uint32_t fwd_cnt;
    uint32_t payload_len;   /* payload bytes dissected (after bounding by len) */
    uint32_t frame_len;     /* bytes of the whole frame, for the conversation table */
    /* packet-vsock-conversation.c's record of this packet; NULL for a packet
     * it does not track. */
    const vsock_conv_packet_t *conv;
} vsock_packet_info_t;

#endif /* PACKET_VSOCK_H */
