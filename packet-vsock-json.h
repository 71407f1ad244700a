/* packet-vsock-json.h
 * Finds where a JSON object ends in a byte stream, checks its syntax and picks
 * out a few string members: enough to delimit newline- or brace-delimited JSON
 * messages (qemu-guest-agent, Kata agent logs) before Wireshark's JSON
 * dissector shows them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_JSON_H
#define PACKET_VSOCK_JSON_H

#include <epan/packet.h>

typedef enum {
    VSOCK_JSON_COMPLETE,     /* a whole object: end is the offset after it */
    VSOCK_JSON_INCOMPLETE,   /* the bytes end inside the object */
    VSOCK_JSON_INVALID       /* not JSON: end is the offset of the first bad byte */
} vsock_json_status_t;

/* Members to pick out: "key" for a member of the object, "key.sub" for a
 * member of an object-valued member. */
typedef struct vsock_json_member {
    const char *path;
    bool present;            /* out: the member exists */
    const char *string;      /* out: its value if a string (escapes kept), else NULL */
} vsock_json_member_t;

/* Scans buf[start, len) for one JSON object (whitespace before it allowed).
 * members: n_members requests, filled in; strings are allocated in scope. */
vsock_json_status_t vsock_json_scan(const uint8_t *buf, int start, int len, wmem_allocator_t *scope,
                                    vsock_json_member_t *members, unsigned n_members, int *end);

/* Shows a JSON message with Wireshark's JSON dissector (json_handle; nothing
 * when NULL), leaving the Info column as the caller wrote it. JSON the JSON
 * dissector cannot take shows as an exception in place and does not hide
 * the messages after it. */
void vsock_json_show(dissector_handle_t json_handle, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree);

#endif /* PACKET_VSOCK_JSON_H */
