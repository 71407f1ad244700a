/* packet-vsock-text.c
 * Text lines of a payload as tree items: consoles and logs carried over vsock
 * are plain text, shown line by line.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>

#include "packet-vsock-text.h"

unsigned vsock_add_text_lines(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int hf_line, int offset,
                              int end, const char **first)
{
    unsigned n_lines = 0;

    *first = "";
    while (offset < end) {
        int next = end;
        const int line_len = tvb_find_line_end(tvb, offset, end - offset, &next, false);

        if (line_len < 0 || next <= offset)
            break;
        proto_tree_add_item(tree, hf_line, tvb, offset, line_len, ENC_UTF_8);
        if (**first == '\0' && line_len > 0)
            *first = tvb_format_text(pinfo->pool, tvb, offset, line_len);
        n_lines++;
        offset = next;
    }
    return n_lines;
}

const char *vsock_lines_summary(packet_info *pinfo, const char *first, unsigned n_lines)
{
    if (n_lines <= 1)
        return first;
    return wmem_strdup_printf(pinfo->pool, "%s (+%u lines)", first, n_lines - 1);
}
