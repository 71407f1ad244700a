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

/* Value names shared by the dissector and the statistics (packet-vsock.c). */
extern const value_string vsockmon_op_vals[];
extern const value_string virtio_type_short_vals[];
extern const value_string virtio_op_short_vals[];

/* What one packet's headers say; filled while parsing, in pinfo->pool.
 * The payload hand-off and the taps read it. */
typedef struct vsock_hdr {
    uint64_t src_cid;
    uint64_t dst_cid;
    uint32_t src_port;
    uint32_t dst_port;
    uint32_t op;            /* vsockmon op */
    uint32_t transport;
    uint32_t trans_len;
    bool has_virtio;   /* the virtio fields below were read */
    uint32_t type;
    uint32_t virtio_op;
    uint32_t flags;
    uint32_t len;           /* virtio len */
    uint32_t buf_alloc;
    uint32_t fwd_cnt;
    uint32_t payload_len;   /* payload bytes dissected (after bounding by len) */
    uint32_t frame_len;     /* bytes of the whole frame, for the conversation table */
    /* Connection tracking's record of this packet, NULL without one. */
    struct vsock_packet_analysis *analysis;
} vsock_hdr_t;

/* Connection states, as shown on each packet (state after the packet). */
enum vsock_conn_state {
    VSOCK_STATE_UNKNOWN = 0,     /* capture started inside the connection */
    VSOCK_STATE_CONNECTING,      /* REQUEST sent, no answer yet */
    VSOCK_STATE_ESTABLISHED,
    VSOCK_STATE_REFUSED,         /* REQUEST answered by RST */
    VSOCK_STATE_HALF_CLOSED_CLIENT, /* the connecting side shut down sending */
    VSOCK_STATE_HALF_CLOSED_SERVER, /* the listening side shut down sending */
    VSOCK_STATE_CLOSING,         /* both directions shut down, no RST yet */
    VSOCK_STATE_CLOSED,          /* RST after SHUTDOWN: a clean close */
    VSOCK_STATE_RESET            /* RST without SHUTDOWN: an abort */
};

/* A connection as connection tracking knows it (vsock-analysis.c). */
typedef struct vsock_conv vsock_conv_t;

/* vsock-reassembly.c's records: per direction, and per packet when the packet
 * takes part in a reassembly. */
typedef struct vsock_reassembly_flow vsock_reassembly_flow_t;
typedef struct vsock_reassembly_packet vsock_reassembly_packet_t;

/* What the payload hand-off keeps per direction of a connection; stored with
 * the connection (wmem_file_scope). */
typedef struct vsock_payload_flow {
    vsock_reassembly_flow_t *reassembly; /* allocated on first use */
    bool heuristics_refused;         /* no heuristic recognised the first bytes */
    uint32_t http2_from_frame;            /* HTTP/2's heuristic accepted this frame (0: never) */
    dissector_handle_t connection_dissector; /* vsock_set_connection_dissector() */
    uint32_t connection_dissector_from;   /* ... for the frames after this one */
} vsock_payload_flow_t;

/* Links of a control packet to the packets that answer it or that it answers
 * (frame numbers, 0 when unknown). Only packets that have one carry this. */
typedef struct vsock_packet_links {
    uint32_t response_in;         /* REQUEST: its RESPONSE or RST */
    uint32_t response_to;         /* RESPONSE or RST: the REQUEST it answers */
    uint32_t rst_in;              /* SHUTDOWN: the RST that answers it */
    uint32_t shutdown_frame;      /* RST: the SHUTDOWN it answers */
    uint32_t credit_update_in;    /* CREDIT_REQUEST: the CREDIT_UPDATE that answers it */
    uint32_t credit_request_frame; /* CREDIT_UPDATE: the CREDIT_REQUEST it answers */
    nstime_t connect_time;       /* RESPONSE or RST: time since the REQUEST */
} vsock_packet_links_t;

/* What the first pass learned about one packet; read on every pass (file
 * scope, in vsock-analysis.c's pages indexed by frame number). One per packet
 * of a capture, so kept small (56 bytes): rare facts hang off pointers,
 * derived ones are computed. */
typedef struct vsock_packet_analysis {
    vsock_conv_t *conv;
    vsock_packet_links_t *links;          /* NULL: no links */
    vsock_reassembly_packet_t *reassembly; /* NULL: the payload was handed on whole */
    uint64_t seq;                 /* offset of the first payload byte in its direction */
    int64_t  time_delta_ns;       /* since the previous packet of the stream */
    /* RW with VSOCK_P_HAS_CREDIT: the receiver's buffer and what was sent and
     * not yet consumed by it after this packet (the sender's credit before
     * it follows from them). */
    uint32_t peer_buf_alloc;
    uint32_t bytes_in_flight;
    uint16_t flags;               /* VSOCK_A_*: expert info */
    uint8_t  direction;           /* 0: from the side seen first (the connecting side) */
    uint8_t  state;               /* enum vsock_conn_state after this packet */
    uint8_t  pflags;              /* VSOCK_P_*: facts for the payload hand-off */
} vsock_packet_analysis_t;

/* Facts of a packet that are not expert info. */
#define VSOCK_P_HAS_CREDIT       0x01 /* peer_buf_alloc and bytes_in_flight are known */
#define VSOCK_P_STREAM_START     0x02 /* RW whose first byte is its direction's first, REQUEST seen */
#define VSOCK_P_SKIP_HEURISTICS  0x04 /* heuristics are not offered this payload */

/* Analysis flags of a packet, each shown as an expert info. */
#define VSOCK_A_UNKNOWN_CONNECTION   0x0001 /* first packet seen is not a REQUEST */
#define VSOCK_A_CREDIT_VIOLATION     0x0002 /* RW beyond the peer's credit */
#define VSOCK_A_CREDIT_EXHAUSTED     0x0004 /* the sender has no credit left */
#define VSOCK_A_CREDIT_REOPENED      0x0008 /* the peer gives credit back to a stalled sender */
#define VSOCK_A_FWD_CNT_BACKWARDS    0x0010
#define VSOCK_A_DATA_AFTER_SHUTDOWN  0x0020 /* RW after the sender's SHUTDOWN send bit */
#define VSOCK_A_DATA_AFTER_RST       0x0040
#define VSOCK_A_DATA_BEFORE_CONNECT  0x0080 /* RW before the RESPONSE */
#define VSOCK_A_NEW_STREAM_REUSE     0x0100 /* REQUEST reuses the addresses of an earlier stream */
#define VSOCK_A_REFUSED              0x0200 /* RST answering a REQUEST */
#define VSOCK_A_RESET                0x0400 /* RST aborting a connection (no SHUTDOWN before) */

/* vsock-analysis.c: connection tracking. */
void vsock_analysis_register(int proto);
void vsock_analysis_init(void);
/* First pass: track the connection; every pass: the stored result (also
 * set in hdr->analysis). */
vsock_packet_analysis_t *vsock_analyze_packet(packet_info *pinfo, vsock_hdr_t *hdr);
void vsock_analysis_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                             const vsock_hdr_t *hdr, const vsock_packet_analysis_t *pa);
/* The stored analysis of the packet being dissected (or NULL), for taps and filters. */
const vsock_packet_analysis_t *vsock_get_packet_analysis(packet_info *pinfo);
/* vsock.stream of a packet. */
uint32_t vsock_packet_stream(const vsock_packet_analysis_t *pa);
/* The payload state of one direction of the packet's connection. */
vsock_payload_flow_t *vsock_payload_flow(const vsock_packet_analysis_t *pa, uint8_t direction);

/* vsock-reassembly.c: application data across RW packets. */
void vsock_reassembly_register(int proto);
/* Hands an RW payload on, reassembling stream PDUs and seqpacket messages. */
void vsock_reassemble_payload(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_hdr_t *hdr);
/* An RST drops what was being reassembled; flags a cut seqpacket message. */
void vsock_reassembly_note_rst(packet_info *pinfo, proto_tree *tree, const vsock_hdr_t *hdr);

/* vsock-taps.c: Follow, conversation and endpoint tables, conversation filter,
 * statistics. */
void vsock_taps_register(int proto);
void vsock_taps_handoff(void);
/* Queues the packet to the taps; payload_tvb is NULL without application data. */
void vsock_taps_queue(packet_info *pinfo, vsock_hdr_t *hdr, tvbuff_t *payload_tvb);

/* vsock-payload.c: the hand-off of payload bytes to subdissectors. */
void vsock_payload_register(int proto);
void vsock_payload_handoff(void);
void vsock_dissect_payload(tvbuff_t *payload_tvb, packet_info *pinfo, proto_tree *tree,
                           const vsock_hdr_t *hdr);

#endif /* PACKET_VSOCK_H */
