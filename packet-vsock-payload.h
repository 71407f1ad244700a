/* packet-vsock-payload.h
 * What application dissectors may ask of the vsock payload hand-off.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_PAYLOAD_H
#define PACKET_VSOCK_PAYLOAD_H

#include <epan/packet.h>

/* Called by a dissector that recognised the packet being dissected (on the
 * first pass; later passes ignore it): every later payload of the packet's
 * connection, both directions, goes to handle first, as with
 * conversation_set_dissector() over TCP. For protocols recognisable only by
 * their first bytes (a tunnel after its opening request). */
void vsock_set_connection_dissector(packet_info *pinfo, dissector_handle_t handle);

/* Whether a payload is the HTTP request that opens a tunnel (true: HTTP's
 * heuristic must not take it). */
typedef bool (*vsock_http_opening_t)(tvbuff_t *tvb);

/* Registers such a check, from a handoff. Wireshark moves a heuristic that
 * matched to the front of its list, so once HTTP's has recognised a payload
 * it is asked before the tunnel's heuristic and would take the request
 * (gvisor-tap-vsock's "POST /connect"); with the check it declines it. */
void vsock_payload_not_http(vsock_http_opening_t check);

#endif /* PACKET_VSOCK_PAYLOAD_H */
