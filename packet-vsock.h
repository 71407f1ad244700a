/* packet-vsock.h
 * Shared definitions of the vsock plugin: header layout, values and the
 * per-packet header record that the payload hand-off (and taps) read.
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

/* What one packet's headers say; filled while parsing, in pinfo->pool.
 * The payload hand-off and the taps read it. */
typedef struct vsock_hdr {
    guint64 src_cid;
    guint64 dst_cid;
    guint32 src_port;
    guint32 dst_port;
    guint32 op;            /* vsockmon op */
    guint32 transport;
    guint32 trans_len;
    gboolean has_virtio;   /* the virtio fields below were read */
    guint32 type;
    guint32 virtio_op;
    guint32 flags;
    guint32 len;           /* virtio len */
    guint32 buf_alloc;
    guint32 fwd_cnt;
    guint32 payload_len;   /* payload bytes dissected (after bounding by len) */
} vsock_hdr_t;

/* vsock-payload.c: the hand-off of payload bytes to subdissectors. */
void vsock_payload_register(int proto);
void vsock_payload_handoff(void);
void vsock_dissect_payload(tvbuff_t *payload_tvb, packet_info *pinfo, proto_tree *tree,
                           const vsock_hdr_t *hdr);

#endif /* PACKET_VSOCK_H */
