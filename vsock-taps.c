/* vsock-taps.c
 * Follow, conversation and endpoint tables, conversation filter, statistics.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define WS_LOG_DOMAIN "vsock"
#include <wireshark.h>

#include <epan/packet.h>

#include "vsock-compat.h"
#include "packet-vsock.h"

void vsock_taps_register(int proto _U_)
{
}

void vsock_taps_handoff(void)
{
}

void vsock_taps_queue(packet_info *pinfo _U_, vsock_hdr_t *hdr _U_, tvbuff_t *payload_tvb _U_)
{
}
