/* packet-vsock-records.h
 * Per-packet records of fixed size, stored by frame number.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PACKET_VSOCK_RECORDS_H
#define PACKET_VSOCK_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records that every packet of a capture may have, in pages indexed by frame
 * number (a capture's frames are numbered from 1 without gaps). Against
 * p_add_proto_data this saves, per packet, an allocation header, a
 * proto_data_t and a list node: about as much again as a small record.
 * Memory comes from wmem_file_scope(); reset the table in an init routine. */
typedef struct vsock_records {
    size_t record_size;
    void **pages;
    uint32_t page_count;
} vsock_records_t;

#define VSOCK_RECORDS_INIT(type) { sizeof(type), NULL, 0 }

/* Forgets every record (the memory goes with the file scope). */
void vsock_records_reset(vsock_records_t *records);

/* The zeroed or stored record of a frame; with create false, NULL when its
 * page was never made. */
void *vsock_records_get(vsock_records_t *records, uint32_t frame, bool create);

#endif /* PACKET_VSOCK_RECORDS_H */
