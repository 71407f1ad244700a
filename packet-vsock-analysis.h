/* packet-vsock-analysis.h
 * Connection analysis: state, the links between requests and their answers,
 * credit flow control, and the expert info about them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_ANALYSIS_H
#define PACKET_VSOCK_ANALYSIS_H

#include <epan/packet.h>
#include <epan/expert.h>
#include <epan/prefs.h>

#include "packet-vsock.h"

/* Connection states, as shown on each packet (state after the packet). */
enum vsock_conn_state {
    VSOCK_STATE_UNKNOWN = 0,        /* capture started inside the connection */
    VSOCK_STATE_CONNECTING,         /* REQUEST sent, no answer yet */
    VSOCK_STATE_ESTABLISHED,
    VSOCK_STATE_REFUSED,            /* REQUEST answered by RST */
    VSOCK_STATE_HALF_CLOSED_CLIENT, /* the connecting side shut down sending */
    VSOCK_STATE_HALF_CLOSED_SERVER, /* the listening side shut down sending */
    VSOCK_STATE_CLOSING,            /* both directions shut down, no RST yet */
    VSOCK_STATE_CLOSED,             /* RST after SHUTDOWN: a clean close */
    VSOCK_STATE_RESET               /* RST without SHUTDOWN: an abort */
};

/* vsock.state's names. */
extern const value_string vsock_state_vals[];

/* What the first pass learned about one packet. */
typedef struct vsock_analysis_packet vsock_analysis_packet_t;

/* Registers the fields, the expert info and the preference
 * vsock.analyze_connections. */
void vsock_analysis_register(int proto, module_t *prefs, expert_module_t *expert);

/* First pass, with the preference on: runs the state machine on a packet of
 * a tracked connection. Every pass: the packet's record, NULL without one. */
const vsock_analysis_packet_t *vsock_analysis_track(packet_info *pinfo, const vsock_packet_info_t *packet);

/* vsock.state, the links, the analysis subtree and its expert info. */
void vsock_analysis_add_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                             const vsock_packet_info_t *packet, const vsock_analysis_packet_t *record);

/* Tags the Info column as TCP does: "[Credit exhausted] ...". */
void vsock_analysis_tag_info(packet_info *pinfo, const vsock_analysis_packet_t *record);

/* The state of the connection after the packet being dissected, for the
 * statistics; false without a record. */
bool vsock_analysis_state(packet_info *pinfo, uint8_t *state);

#endif /* PACKET_VSOCK_ANALYSIS_H */
