/* packet-vsock-text.h
 * Text lines of a payload as tree items, for the line-oriented protocols
 * carried over vsock (consoles, agent logs).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_TEXT_H
#define PACKET_VSOCK_TEXT_H

#include <epan/packet.h>

/* Adds an hf_line item (FT_STRING) per line of tvb[offset, end): a line ends
 * at CR, LF or CR LF, and the last one may end without. Returns the number
 * of lines; *first (pinfo->pool) is the first non-empty line, printable, for
 * the Info column ("" if none). */
unsigned vsock_add_text_lines(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int hf_line, int offset,
                              int end, const char **first);

/* "first line" or "first line (+N lines)": an Info summary of several lines. */
const char *vsock_lines_summary(packet_info *pinfo, const char *first, unsigned n_lines);

#endif /* PACKET_VSOCK_TEXT_H */
