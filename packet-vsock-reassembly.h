/* packet-vsock-reassembly.h
 * Application data across RW packets: stream PDUs and seqpacket messages.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_REASSEMBLY_H
#define PACKET_VSOCK_REASSEMBLY_H

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>

#include "packet-vsock.h"

/* Registers the reassembly fields and table, vsock.seqpacket.message_cut and
 * the preference vsock.desegment. */
void vsock_reassembly_register(int proto, module_t *prefs, expert_module_t *expert);

/* Hands an RW payload on, reassembling stream PDUs and seqpacket messages of
 * tracked connections. */
void vsock_reassembly_dissect(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet);

/* An RST drops what was being reassembled; flags a cut seqpacket message. */
void vsock_reassembly_note_rst(packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet);

#endif /* PACKET_VSOCK_REASSEMBLY_H */
