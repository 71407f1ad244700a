/* packet-vsock-payload.h
 * The hand-off of vsock payloads to application dissectors: a dissector that
 * took the connection, Decode As, heuristics, the vsock.port table, data.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_PAYLOAD_H
#define PACKET_VSOCK_PAYLOAD_H

#include <epan/packet.h>
#include <epan/prefs.h>

#include "packet-vsock.h"

/* For application dissectors: called by a dissector that recognised the
 * packet being dissected (on the first pass; later passes ignore it): every
 * later payload of the packet's connection, both directions, goes to handle
 * first, as with conversation_set_dissector() over TCP. For protocols
 * recognisable only by their first bytes (a tunnel after its opening request). */
void vsock_set_connection_dissector(packet_info *pinfo, dissector_handle_t handle);

/* Whether a payload is the HTTP request that opens a tunnel (true: HTTP's
 * heuristic must not take it). */
typedef bool (*vsock_http_opening_t)(tvbuff_t *tvb);

/* Registers such a check, from a handoff. Wireshark moves a heuristic that
 * matched to the front of its list, so once HTTP's has recognised a payload
 * it is asked before the tunnel's heuristic and would take the request
 * (gvisor-tap-vsock's "POST /connect"); with the check it declines it. */
void vsock_payload_not_http(vsock_http_opening_t check);

/* For a service on a well-known port that wraps a protocol a heuristic would
 * take first (AWS Nitro's vsock-proxy carries TLS on 8000): the port-table
 * entry of handle is tried before the heuristics, wherever Decode As or the
 * port preference puts it. */
void vsock_prefer_port_dissector(dissector_handle_t handle);

/* Registers the heuristic list "vsock", the "vsock.port" table, Decode As and
 * the preferences vsock.try_heuristic_first and vsock.heuristics_every_packet. */
void vsock_payload_register(int proto, module_t *prefs);
void vsock_payload_handoff(void);

/* Hands application data (an RW payload, a reassembled PDU or message) on. */
void vsock_payload_dissect(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_packet_info_t *packet);

#endif /* PACKET_VSOCK_PAYLOAD_H */
