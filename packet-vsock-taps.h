/* packet-vsock-taps.h
 * Follow vsock Stream, the conversation and endpoint tables, the
 * conversation filter and the "vsock,tree" statistics.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_TAPS_H
#define PACKET_VSOCK_TAPS_H

#include <epan/packet.h>

#include "packet-vsock.h"

void vsock_taps_register(int proto, int cid_address_type);
void vsock_taps_handoff(void);

/* Queues the packet to the taps; payload_tvb: its application data, or NULL. */
void vsock_taps_queue(packet_info *pinfo, const vsock_packet_info_t *packet, tvbuff_t *payload_tvb);

#endif /* PACKET_VSOCK_TAPS_H */
