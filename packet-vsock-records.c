/* packet-vsock-records.c
 * Per-packet records of fixed size, stored by frame number.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/wmem_scopes.h>

#include "packet-vsock-records.h"

#define RECORDS_PER_PAGE 4096

void vsock_records_reset(vsock_records_t *records)
{
    records->pages = NULL;
    records->page_count = 0;
}

void *vsock_records_get(vsock_records_t *records, uint32_t frame, bool create)
{
    const uint32_t page = frame / RECORDS_PER_PAGE;
    uint8_t *bytes;

    if (page >= records->page_count) {
        uint32_t count = MAX(records->page_count, 16);

        if (!create)
            return NULL;
        while (count <= page)
            count *= 2;
        records->pages = (void **)wmem_realloc(wmem_file_scope(), records->pages, count * sizeof(void *));
        memset(records->pages + records->page_count, 0, (count - records->page_count) * sizeof(void *));
        records->page_count = count;
    }
    bytes = (uint8_t *)records->pages[page];
    if (!bytes) {
        if (!create)
            return NULL;
        bytes = (uint8_t *)wmem_alloc0(wmem_file_scope(), RECORDS_PER_PAGE * records->record_size);
        records->pages[page] = bytes;
    }
    return &bytes[(size_t)(frame % RECORDS_PER_PAGE) * records->record_size];
}
