/* packet-vsock-reassembly.c
 * Reassembly of application data across RW packets: stream desegmentation
 * for PDU dissectors (HTTP, TLS, SSH, ...), following Wireshark's contract
 * (can_desegment, desegment_offset, desegment_len), and seqpacket messages up
 * to their EOM.
 *
 * Wireshark 4.0 exports no streaming-reassembly helper, so the multi-segment
 * PDU (MSP) bookkeeping is ours, shaped like packet-quic.c's: per direction one
 * open MSP (vsock delivers in order, without retransmission), a record per
 * packet of what the first pass decided, and a replay of that record on later
 * passes so that every pass builds the same tree.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>
#include <epan/proto_data.h>
#include <epan/reassemble.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-payload.h"
#include "packet-vsock-reassembly.h"

#define NO_NEW_MSP UINT32_MAX

/* One direction of a connection: the PDU or message being put together. */
typedef struct vsock_reassembly_flow {
    bool msp_open;
    uint32_t msp_id;            /* reassembly id: the MSP's first frame */
    uint64_t msp_seq;           /* stream offset where the PDU starts */
    uint64_t msp_nxtpdu;        /* offset where it ends; 0: one more segment */
    uint64_t next_seq;          /* where the next segment must start */
    bool msg_open;
    uint32_t msg_id;            /* seqpacket: the message's first frame */
    uint32_t msg_len;
} vsock_reassembly_flow_t;

/* What the first pass decided for a packet that takes part in a reassembly;
 * later passes replay it. Packets handed on whole have none. */
typedef struct vsock_reassembly_packet {
    uint32_t msp_id;            /* the packet's first msp_bytes continue this MSP (0: none) */
    uint32_t msp_bytes;
    bool msp_completes;
    uint32_t new_msp_offset;    /* where an unfinished PDU starts (NO_NEW_MSP: none) */
    uint32_t msg_id;            /* seqpacket message this packet belongs to (0: whole message) */
    bool msg_completes;
    uint32_t msg_len;           /* at EOM: the message's length */
    bool msg_cut;          /* RST while a message was incomplete */
} vsock_reassembly_packet_t;

static int conn_slot = -1;
/* Frame number -> its record: only the few packets that take part have one.
 * (Not p_add_proto_data: its key includes pinfo->curr_layer_num, which the
 * subdissectors called before a record is made have moved on.) */
static wmem_map_t *packet_records;
static vsock_pref_bool vsock_desegment = true;
static reassembly_table vsock_reassembly_table;

static int hf_vsock_segment_data = -1;
static int hf_vsock_msg_len = -1;
static int hf_vsock_fragments = -1;
static int hf_vsock_fragment = -1;
static int hf_vsock_fragment_overlap = -1;
static int hf_vsock_fragment_overlap_conflicts = -1;
static int hf_vsock_fragment_multiple_tails = -1;
static int hf_vsock_fragment_too_long_fragment = -1;
static int hf_vsock_fragment_error = -1;
static int hf_vsock_fragment_count = -1;
static int hf_vsock_reassembled_in = -1;
static int hf_vsock_reassembled_length = -1;
static int hf_vsock_reassembled_data = -1;

static int ett_vsock_fragment = -1;
static int ett_vsock_fragments = -1;

static expert_field ei_vsock_seqpacket_message_cut = EI_INIT;

static const fragment_items vsock_fragment_items = {
    &ett_vsock_fragment,
    &ett_vsock_fragments,
    &hf_vsock_fragments,
    &hf_vsock_fragment,
    &hf_vsock_fragment_overlap,
    &hf_vsock_fragment_overlap_conflicts,
    &hf_vsock_fragment_multiple_tails,
    &hf_vsock_fragment_too_long_fragment,
    &hf_vsock_fragment_error,
    &hf_vsock_fragment_count,
    &hf_vsock_reassembled_in,
    &hf_vsock_reassembled_length,
    &hf_vsock_reassembled_data,
    "vsock segments"
};

/* The reassembly state of one direction of the packet's connection; made
 * (create) only when a PDU or a message first spans packets: most
 * connections never need it. NULL: none yet. */
static vsock_reassembly_flow_t *get_flow(const vsock_conv_packet_t *cp, bool create)
{
    vsock_reassembly_flow_t *flows = (vsock_reassembly_flow_t *)vsock_conversation_get_data(cp->conv, conn_slot);

    if (!flows) {
        if (!create)
            return NULL;
        flows = wmem_alloc0_array(wmem_file_scope(), vsock_reassembly_flow_t, 2);
        vsock_conversation_set_data(cp->conv, conn_slot, flows);
    }
    return &flows[cp->direction];
}

static const vsock_reassembly_packet_t *get_record(const packet_info *pinfo)
{
    return (const vsock_reassembly_packet_t *)wmem_map_lookup(packet_records, GUINT_TO_POINTER(pinfo->num));
}

/* First pass: the packet's record, made when it first takes part. */
static vsock_reassembly_packet_t *record_of(packet_info *pinfo)
{
    vsock_reassembly_packet_t *record = (vsock_reassembly_packet_t *)get_record(pinfo);

    if (!record) {
        record = wmem_new0(wmem_file_scope(), vsock_reassembly_packet_t);
        record->new_msp_offset = NO_NEW_MSP;
        wmem_map_insert(packet_records, GUINT_TO_POINTER(pinfo->num), record);
    }
    return record;
}

/* A PDU dissector that only asked for more bytes may have written the Info
 * column anyway; the segment keeps ours, as on a later pass. */
static void call_payload_keep_info(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet);

/* Application data to the subdissectors, which may ask for more (streams only). */
static void call_payload(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet,
                         bool can_desegment)
{
    pinfo->can_desegment = can_desegment ? 2 : 0;
    pinfo->desegment_offset = 0;
    pinfo->desegment_len = 0;
    vsock_payload_dissect(tvb, pinfo, tree, packet);
}

static void call_payload_keep_info(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet)
{
    const char *info = col_get_text(pinfo->cinfo, COL_INFO);
    char *ours = info ? wmem_strdup(pinfo->pool, info) : NULL;

    call_payload(tvb, pinfo, tree, packet, true);
    if (ours && pinfo->desegment_len != 0 && pinfo->desegment_offset == 0)
        col_add_str(pinfo->cinfo, COL_INFO, ours);
}

/* Bytes that belong to a PDU finished elsewhere; "Reassembled in" once known. */
static void show_part(tvbuff_t *tvb, int offset, packet_info *pinfo, proto_tree *tree,
                      fragment_head *fd_head, const char *what)
{
    /* After a carry-over the segment may hold no byte of the new PDU. */
    if (tvb_reported_length_remaining(tvb, offset) > 0)
        proto_tree_add_item(tree, hf_vsock_segment_data, tvb, offset, -1, ENC_NA);
    col_append_fstr(pinfo->cinfo, COL_INFO, " [vsock %s]", what);
    if (fd_head)
        process_reassembled_data(tvb, offset, pinfo, "Reassembled vsock payload", fd_head,
                                 &vsock_fragment_items, NULL, tree);
}

static void show_segment(tvbuff_t *tvb, int offset, packet_info *pinfo, proto_tree *tree,
                         fragment_head *fd_head)
{
    show_part(tvb, offset, pinfo, tree, fd_head, "segment of a reassembled PDU");
}

static bool wants_more(const packet_info *pinfo)
{
    return pinfo->desegment_len != 0;
}

static uint64_t msp_end(uint64_t start, uint32_t have, uint32_t more)
{
    return more == DESEGMENT_ONE_MORE_SEGMENT ? 0 : start + have + more;
}

/* First pass: the PDU completed by this segment was followed, inside the
 * reassembled data, by the start of another that needs more bytes (a
 * dissector that asked for "one more segment" got the start of the next PDU
 * too). Those bytes, which may come from earlier frames, open a new MSP with
 * the rest of this segment; its id is this frame. */
static void carry_over(tvbuff_t *tvb, tvbuff_t *pdu_tvb, packet_info *pinfo, proto_tree *tree, uint32_t need,
                       vsock_reassembly_flow_t *flow, vsock_reassembly_packet_t *rp)
{
    const uint32_t len = tvb_reported_length(tvb);
    const uint32_t start = (uint32_t)pinfo->desegment_offset;
    const uint32_t carried = tvb_reported_length(pdu_tvb) - start;

    flow->msp_open = true;
    flow->msp_id = pinfo->num;
    flow->msp_seq += start;
    /* If the rest of this segment already completes it, the next segment
     * does (see continue_msp: an end that lies behind). */
    flow->msp_nxtpdu = msp_end(flow->msp_seq, carried, pinfo->desegment_len);
    rp->new_msp_offset = need;
    fragment_add(&vsock_reassembly_table, pdu_tvb, start, pinfo, pinfo->num, NULL, 0, carried, true);
    if (need < len)
        fragment_add(&vsock_reassembly_table, tvb, need, pinfo, pinfo->num, NULL, carried, len - need, true);
    show_segment(tvb, need, pinfo, tree, NULL);
}

/* First pass, a segment that continues the open MSP. Returns how many of its
 * bytes the MSP took. */
static uint32_t continue_msp(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet,
                            uint64_t seq, vsock_reassembly_flow_t *flow, vsock_reassembly_packet_t *rp)
{
    const uint32_t len = tvb_reported_length(tvb);
    /* The end may lie before this segment: when a "still short" PDU took the
     * rest of its completing segment, the bytes it asked for were already
     * added. Then complete with this whole segment (need would underflow). */
    const bool one_more = flow->msp_nxtpdu == 0 || flow->msp_nxtpdu < seq;
    const bool completes = one_more || seq + len >= flow->msp_nxtpdu;
    const uint32_t need = completes && !one_more ? (uint32_t)(flow->msp_nxtpdu - seq) : len;
    fragment_head *fd_head;
    tvbuff_t *pdu_tvb;

    rp->msp_id = flow->msp_id;
    rp->msp_bytes = need;
    flow->next_seq = seq + len;
    fd_head = fragment_add(&vsock_reassembly_table, tvb, 0, pinfo, flow->msp_id, NULL,
                           (uint32_t)(seq - flow->msp_seq), need, !completes);
    if (!completes || !fd_head) {
        show_segment(tvb, 0, pinfo, tree, NULL);
        return len;
    }

    pdu_tvb = process_reassembled_data(tvb, 0, pinfo, "Reassembled vsock payload", fd_head,
                                       &vsock_fragment_items, NULL, tree);
    /* Closed before the subdissector runs: if it throws (a malformed PDU), the
     * MSP must not stay open on a reassembly that is already complete. */
    rp->msp_completes = true;
    flow->msp_open = false;
    call_payload_keep_info(pdu_tvb, pinfo, tree, packet);
    if (wants_more(pinfo) && pinfo->desegment_offset == 0) {
        /* Still short: keep collecting, this whole segment included. */
        uint32_t more = pinfo->desegment_len;
        fragment_set_partial_reassembly(&vsock_reassembly_table, pinfo, flow->msp_id, NULL);
        if (need < len)
            fragment_add(&vsock_reassembly_table, tvb, need, pinfo, flow->msp_id, NULL,
                         (uint32_t)(seq + need - flow->msp_seq), len - need, true);
        flow->msp_nxtpdu = msp_end(flow->msp_seq, tvb_reported_length(pdu_tvb), more);
        rp->msp_bytes = len;
        rp->msp_completes = false;
        flow->msp_open = true;
        return len;
    }
    if (wants_more(pinfo) && pinfo->desegment_offset < (int)tvb_reported_length(pdu_tvb)) {
        carry_over(tvb, pdu_tvb, pinfo, tree, need, flow, rp);
        return len;
    }
    return need;
}

/* First pass, bytes that start new PDUs; opens an MSP if the last is unfinished. */
static void dissect_new_pdus(tvbuff_t *tvb, uint32_t offset, packet_info *pinfo, proto_tree *tree,
                             const vsock_packet_info_t *packet)
{
    const uint32_t len = tvb_reported_length(tvb);
    const uint64_t seq = packet->conv->seq;
    vsock_reassembly_flow_t *flow;
    uint32_t start;

    call_payload_keep_info(tvb_new_subset_remaining(tvb, offset), pinfo, tree, packet);
    if (!wants_more(pinfo) || pinfo->desegment_offset >= (int)(len - offset))
        return;
    flow = get_flow(packet->conv, true);
    start = offset + pinfo->desegment_offset;
    flow->msp_open = true;
    flow->msp_id = pinfo->num;
    flow->msp_seq = seq + start;
    flow->msp_nxtpdu = msp_end(seq + offset, len - offset, pinfo->desegment_len);
    flow->next_seq = seq + len;
    record_of(pinfo)->new_msp_offset = start;
    fragment_add(&vsock_reassembly_table, tvb, start, pinfo, pinfo->num, NULL, 0, len - start, true);
    show_segment(tvb, start, pinfo, tree, NULL);
}

static void stream_first_pass(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet)
{
    const vsock_conv_packet_t *cp = packet->conv;
    vsock_reassembly_flow_t *flow = get_flow(cp, false);
    uint32_t offset = 0;

    /* A gap in the capture: the open PDU cannot be completed. */
    if (flow && flow->msp_open && flow->next_seq != cp->seq)
        flow->msp_open = false;
    if (flow && flow->msp_open)
        offset = continue_msp(tvb, pinfo, tree, packet, cp->seq, flow, record_of(pinfo));
    if (offset < tvb_reported_length(tvb))
        dissect_new_pdus(tvb, offset, pinfo, tree, packet);
}

/* Later passes: the same calls on the same bytes as the first pass made. */
static void stream_replay(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet)
{
    const vsock_reassembly_packet_t *rp = get_record(pinfo);
    const uint32_t len = tvb_reported_length(tvb);
    uint32_t offset = 0;
    fragment_head *fd_head;

    if (!rp) {
        call_payload(tvb, pinfo, tree, packet, true);
        return;
    }

    if (rp->msp_id) {
        fd_head = fragment_get(&vsock_reassembly_table, pinfo, rp->msp_id, NULL);
        if (!rp->msp_completes || !fd_head) {
            /* A PDU the capture ended before completing is reassembled nowhere. */
            show_segment(tvb, 0, pinfo, tree, fd_head && fd_head->reassembled_in ? fd_head : NULL);
            return;
        }
        call_payload(process_reassembled_data(tvb, 0, pinfo, "Reassembled vsock payload", fd_head,
                                              &vsock_fragment_items, NULL, tree),
                     pinfo, tree, packet, true);
        offset = rp->msp_bytes;
    }
    if (rp->new_msp_offset == NO_NEW_MSP) {
        if (offset < len)
            call_payload(tvb_new_subset_remaining(tvb, offset), pinfo, tree, packet, true);
        return;
    }
    if (rp->new_msp_offset > offset)
        call_payload(tvb_new_subset_length(tvb, offset, rp->new_msp_offset - offset), pinfo, tree, packet, true);
    fd_head = fragment_get(&vsock_reassembly_table, pinfo, pinfo->num, NULL);
    show_segment(tvb, rp->new_msp_offset, pinfo, tree, fd_head && fd_head->reassembled_in ? fd_head : NULL);
}

/* On the packet that ends a message (EOM): the message's length. */
static void add_msg_len(proto_tree *tree, tvbuff_t *tvb, uint32_t msg_len)
{
    proto_item_set_generated(proto_tree_add_uint(tree, hf_vsock_msg_len, tvb, 0, 0, msg_len));
}

/* Seqpacket: the RW packets of one message, up to the one with EOM. */
static void dissect_message_part(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet,
                                 bool first_pass)
{
    const vsock_reassembly_packet_t *rp;
    fragment_head *fd_head;

    if (first_pass) {
        const bool eom = (packet->flags & VIRTIO_VSOCK_SEQ_EOM) != 0;
        vsock_reassembly_flow_t *flow = get_flow(packet->conv, !eom);
        const uint32_t len = tvb_reported_length(tvb);

        /* A whole message in one packet needs no record. */
        if (!eom || (flow && flow->msg_open)) {
            vsock_reassembly_packet_t *record = record_of(pinfo);

            if (!flow->msg_open) {
                flow->msg_open = true;
                flow->msg_id = pinfo->num;
                flow->msg_len = 0;
            }
            fragment_add(&vsock_reassembly_table, tvb, 0, pinfo, flow->msg_id, NULL, flow->msg_len, len, !eom);
            flow->msg_len += len;
            record->msg_id = flow->msg_id;
            record->msg_completes = eom;
            record->msg_len = eom ? flow->msg_len : 0;
            flow->msg_open = !eom;
        }
    }
    rp = get_record(pinfo);
    if (!rp || !rp->msg_id) {
        add_msg_len(tree, tvb, tvb_reported_length(tvb));
        call_payload(tvb, pinfo, tree, packet, false);
        return;
    }
    if (rp->msg_completes)
        add_msg_len(tree, tvb, rp->msg_len);
    fd_head = fragment_get(&vsock_reassembly_table, pinfo, rp->msg_id, NULL);
    if (rp->msg_completes && fd_head) {
        call_payload(process_reassembled_data(tvb, 0, pinfo, "Reassembled vsock message", fd_head,
                                              &vsock_fragment_items, NULL, tree),
                     pinfo, tree, packet, false);
        return;
    }
    show_part(tvb, 0, pinfo, tree, fd_head && fd_head->reassembled_in ? fd_head : NULL,
              "part of a reassembled message");
}

void vsock_reassembly_dissect(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet)
{
    const bool first_pass = !PINFO_FD_VISITED(pinfo);

    if (!vsock_desegment || !packet->conv || packet->type == VIRTIO_VSOCK_TYPE_DGRAM) {
        call_payload(tvb, pinfo, tree, packet, false);
        return;
    }
    if (packet->type == VIRTIO_VSOCK_TYPE_SEQPACKET)
        dissect_message_part(tvb, pinfo, tree, packet, first_pass);
    else if (first_pass)
        stream_first_pass(tvb, pinfo, tree, packet);
    else
        stream_replay(tvb, pinfo, tree, packet);
}

void vsock_reassembly_note_rst(packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet)
{
    const vsock_reassembly_packet_t *record;

    if (!vsock_desegment || !packet->conv)
        return;
    if (!PINFO_FD_VISITED(pinfo)) {
        vsock_reassembly_flow_t *flows =
            (vsock_reassembly_flow_t *)vsock_conversation_get_data(packet->conv->conv, conn_slot);
        bool cut = false;

        for (uint8_t direction = 0; flows && direction < 2; direction++) {
            cut |= flows[direction].msg_open;
            flows[direction].msg_open = false;
            flows[direction].msp_open = false;
        }
        if (cut)
            record_of(pinfo)->msg_cut = true;
    }
    record = get_record(pinfo);
    if (record && record->msg_cut)
        expert_add_info(pinfo, proto_tree_get_parent(tree), &ei_vsock_seqpacket_message_cut);
}

void vsock_reassembly_register(int proto, module_t *prefs, expert_module_t *expert)
{
    static hf_register_info hf[] = {
        { &hf_vsock_segment_data,
          { "vsock segment data", "vsock.segment_data", FT_BYTES, BASE_NONE, NULL, 0x0,
            "Bytes of a PDU or message that is reassembled in another frame", HFILL } },
        { &hf_vsock_msg_len,
          { "Message length", "vsock.seqpacket.msg_len", FT_UINT32, BASE_DEC, NULL, 0x0,
            "Length of the seqpacket message that ends in this packet (EOM)", HFILL } },
        { &hf_vsock_fragments,
          { "Reassembled vsock segments", "vsock.segments", FT_NONE, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment,
          { "vsock segment", "vsock.segment", FT_FRAMENUM, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment_overlap,
          { "Segment overlap", "vsock.segment.overlap", FT_BOOLEAN, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment_overlap_conflicts,
          { "Conflicting data in segment overlap", "vsock.segment.overlap.conflict", FT_BOOLEAN, BASE_NONE,
            NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment_multiple_tails,
          { "Multiple tail segments found", "vsock.segment.multipletails", FT_BOOLEAN, BASE_NONE, NULL, 0x0,
            NULL, HFILL } },
        { &hf_vsock_fragment_too_long_fragment,
          { "Segment too long", "vsock.segment.toolongfragment", FT_BOOLEAN, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment_error,
          { "Reassembling error", "vsock.segment.error", FT_FRAMENUM, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_fragment_count,
          { "Segment count", "vsock.segment.count", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_reassembled_in,
          { "Reassembled PDU in frame", "vsock.reassembled_in", FT_FRAMENUM, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_reassembled_length,
          { "Reassembled vsock length", "vsock.reassembled.length", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_vsock_reassembled_data,
          { "Reassembled vsock data", "vsock.reassembled.data", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_vsock_fragment,
        &ett_vsock_fragments,
    };
    static ei_register_info ei[] = {
        { &ei_vsock_seqpacket_message_cut,
          { "vsock.seqpacket.message_cut", PI_SEQUENCE, PI_WARN,
            "RST while a seqpacket message was incomplete: the message is lost", EXPFILL } },
    };

    proto_register_field_array(proto, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_register_field_array(expert, ei, array_length(ei));
    conn_slot = vsock_conversation_new_data_slot();
    packet_records = wmem_map_new_autoreset(wmem_epan_scope(), wmem_file_scope(), g_direct_hash, g_direct_equal);
    reassembly_table_register(&vsock_reassembly_table, &addresses_ports_reassembly_table_functions);

    prefs_register_bool_preference(prefs, "desegment", "Allow subdissector to reassemble vsock streams",
                                   "Whether subdissectors may ask for more bytes of a stream to reassemble "
                                   "their PDUs across RW packets, and whether seqpacket messages are "
                                   "reassembled up to their end of message (EOM)",
                                   &vsock_desegment);
}
