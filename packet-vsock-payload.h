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

/* For a service on a well-known port that wraps a protocol a heuristic would
 * take first (AWS Nitro's vsock-proxy carries TLS on 8000): the port-table
 * entry of handle is tried before the heuristics, wherever Decode As or the
 * port preference puts it. */
void vsock_prefer_port_dissector(dissector_handle_t handle);

#endif /* PACKET_VSOCK_PAYLOAD_H */
