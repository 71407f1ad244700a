/* packet-sd-notify.c
 * systemd's service notification protocol (sd_notify) over vsock: since
 * systemd 254, NOTIFY_SOCKET=vsock:CID:PORT (or vsock-stream:, vsock-seqpacket:)
 * makes the guest's service manager report to its VMM (systemd-vmspawn and
 * others set it through the vmm.notify_socket credential): READY=1,
 * STATUS=..., X_SYSTEMD_UNIT_ACTIVE=..., EXIT_STATUS=... One message per
 * connection, newline-separated KEY=VALUE assignments, ended by the sender's
 * shutdown (libsystemd sd-daemon.c); the port is the VMM's choice, so the
 * connection is recognised by its first assignment.
 *
 * A message is usually one RW packet; a line cut between packets is joined
 * here (the end of a message is the end of the stream, which no stream
 * reassembly request can wait for).
 *
 * Keys: systemd man/sd_notify.xml, man/systemd.xml.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/proto_data.h>
#include <wsutil/strtoi.h>

#include "vsock-compat.h"
#include "packet-vsock-payload.h"

/* A line longer than this is not joined further (systemd reads 4 KiB). */
#define SD_NOTIFY_MAX_LINE  (64 * 1024)

void proto_register_sd_notify(void);
void proto_reg_handoff_sd_notify(void);

static int proto_sd_notify = -1;

static int hf_sd_notify_assignment = -1;
static int hf_sd_notify_key = -1;
static int hf_sd_notify_value = -1;
static int hf_sd_notify_fragment = -1;
static int hf_sd_notify_continued_in = -1;
static int hf_sd_notify_continues_from = -1;
/* Well-known assignments. */
static int hf_sd_notify_ready = -1;
static int hf_sd_notify_reloading = -1;
static int hf_sd_notify_stopping = -1;
static int hf_sd_notify_monotonic_usec = -1;
static int hf_sd_notify_status = -1;
static int hf_sd_notify_notifyaccess = -1;
static int hf_sd_notify_errno = -1;
static int hf_sd_notify_buserror = -1;
static int hf_sd_notify_varlinkerror = -1;
static int hf_sd_notify_exit_status = -1;
static int hf_sd_notify_mainpid = -1;
static int hf_sd_notify_mainpidfdid = -1;
static int hf_sd_notify_watchdog = -1;
static int hf_sd_notify_watchdog_usec = -1;
static int hf_sd_notify_extend_timeout_usec = -1;
static int hf_sd_notify_fdstore = -1;
static int hf_sd_notify_fdstoreremove = -1;
static int hf_sd_notify_fdname = -1;
static int hf_sd_notify_barrier = -1;
static int hf_sd_notify_unit_active = -1;
static int hf_sd_notify_signals_level = -1;
static int hf_sd_notify_hostname = -1;
static int hf_sd_notify_machine_id = -1;
static int hf_sd_notify_shutdown = -1;

static int ett_sd_notify = -1;
static int ett_sd_notify_assignment = -1;

static expert_field ei_sd_notify_no_equals = EI_INIT;
static expert_field ei_sd_notify_not_number = EI_INIT;
static expert_field ei_sd_notify_line_cut = EI_INIT;
static expert_field ei_sd_notify_line_too_long = EI_INIT;

static dissector_handle_t sd_notify_handle;

enum value_kind { VALUE_STRING, VALUE_UINT };

typedef struct known_key {
    const char *key;
    int *hf;
    enum value_kind kind;
} known_key_t;

static const known_key_t known_keys[] = {
    { "READY",                   &hf_sd_notify_ready,               VALUE_UINT },
    { "RELOADING",               &hf_sd_notify_reloading,           VALUE_UINT },
    { "STOPPING",                &hf_sd_notify_stopping,            VALUE_UINT },
    { "MONOTONIC_USEC",          &hf_sd_notify_monotonic_usec,      VALUE_UINT },
    { "STATUS",                  &hf_sd_notify_status,              VALUE_STRING },
    { "NOTIFYACCESS",            &hf_sd_notify_notifyaccess,        VALUE_STRING },
    { "ERRNO",                   &hf_sd_notify_errno,               VALUE_UINT },
    { "BUSERROR",                &hf_sd_notify_buserror,            VALUE_STRING },
    { "VARLINKERROR",            &hf_sd_notify_varlinkerror,        VALUE_STRING },
    { "EXIT_STATUS",             &hf_sd_notify_exit_status,         VALUE_UINT },
    { "MAINPID",                 &hf_sd_notify_mainpid,             VALUE_UINT },
    { "MAINPIDFDID",             &hf_sd_notify_mainpidfdid,         VALUE_UINT },
    { "WATCHDOG",                &hf_sd_notify_watchdog,            VALUE_STRING },  /* 1 or trigger */
    { "WATCHDOG_USEC",           &hf_sd_notify_watchdog_usec,       VALUE_UINT },
    { "EXTEND_TIMEOUT_USEC",     &hf_sd_notify_extend_timeout_usec, VALUE_UINT },
    { "FDSTORE",                 &hf_sd_notify_fdstore,             VALUE_UINT },
    { "FDSTOREREMOVE",           &hf_sd_notify_fdstoreremove,       VALUE_UINT },
    { "FDNAME",                  &hf_sd_notify_fdname,              VALUE_STRING },
    { "BARRIER",                 &hf_sd_notify_barrier,             VALUE_UINT },
    { "X_SYSTEMD_UNIT_ACTIVE",   &hf_sd_notify_unit_active,         VALUE_STRING },
    { "X_SYSTEMD_SIGNALS_LEVEL", &hf_sd_notify_signals_level,       VALUE_UINT },
    { "X_SYSTEMD_HOSTNAME",      &hf_sd_notify_hostname,            VALUE_STRING },
    { "X_SYSTEMD_MACHINE_ID",    &hf_sd_notify_machine_id,          VALUE_STRING },
    { "X_SYSTEMD_SHUTDOWN",      &hf_sd_notify_shutdown,            VALUE_STRING },
};

/* What the first pass learned about one packet of a message. */
typedef struct sd_notify_packet {
    uint32_t continues_from;   /* its first line continues the unfinished line of this frame */
    const uint8_t *prefix;     /* ... whose bytes (a copy, file scope) come first */
    int prefix_len;
    uint32_t continued_in;     /* its last line, unfinished, continues in this frame */
    bool line_too_long;        /* the unfinished line was too long to carry on */
} sd_notify_packet_t;

/* One direction of a connection, during the first pass. */
typedef struct sd_notify_flow {
    sd_notify_packet_t *open;  /* the packet whose last line is unfinished */
    uint32_t open_frame;
    uint8_t *line;             /* that line so far (file scope) */
    int line_len;
} sd_notify_flow_t;

typedef struct sd_notify_conv {
    address first_src;         /* tells the two directions apart */
    uint32_t first_srcport;
    sd_notify_flow_t flow[2];
} sd_notify_conv_t;

static const known_key_t *find_key(const char *key)
{
    for (size_t i = 0; i < array_length(known_keys); i++) {
        if (strcmp(known_keys[i].key, key) == 0)
            return &known_keys[i];
    }
    return NULL;
}

/* ---- lines cut between packets ---- */

static sd_notify_flow_t *get_flow(packet_info *pinfo)
{
    conversation_t *conv = find_or_create_conversation(pinfo);
    sd_notify_conv_t *sconv = (sd_notify_conv_t *)conversation_get_proto_data(conv, proto_sd_notify);

    if (!sconv) {
        sconv = wmem_new0(wmem_file_scope(), sd_notify_conv_t);
        copy_address_wmem(wmem_file_scope(), &sconv->first_src, &pinfo->src);
        sconv->first_srcport = pinfo->srcport;
        conversation_add_proto_data(conv, proto_sd_notify, sconv);
    }
    if (pinfo->srcport == sconv->first_srcport && addresses_equal(&pinfo->src, &sconv->first_src))
        return &sconv->flow[0];
    return &sconv->flow[1];
}

/* Offset of the last LF of buf[0, length), or -1. */
static int last_newline(const uint8_t *buf, int length)
{
    for (int i = length - 1; i >= 0; i--) {
        if (buf[i] == '\n')
            return i;
    }
    return -1;
}

/* The unfinished line after this packet: what came before (if the packet has
 * no LF) and the packet's last bytes. */
static void keep_unfinished_line(sd_notify_flow_t *flow, sd_notify_packet_t *rec, packet_info *pinfo,
                                 tvbuff_t *tvb, const uint8_t *buf, int length)
{
    const int tail_start = last_newline(buf, length) + 1;
    const int tail_len = length - tail_start;
    const int before = tail_start == 0 ? rec->prefix_len : 0;
    const int line_len = before + tail_len;   /* both within a tvb: no overflow */
    uint8_t *line;

    if (tail_len == 0) {
        flow->open = NULL;
        return;
    }
    if (line_len > SD_NOTIFY_MAX_LINE) {
        rec->line_too_long = true;
        flow->open = NULL;
        return;
    }
    line = (uint8_t *)wmem_alloc(wmem_file_scope(), (size_t)line_len);
    if (before)
        memcpy(line, rec->prefix, (size_t)before);
    tvb_memcpy(tvb, &line[before], tail_start, tail_len);
    flow->open = rec;
    flow->open_frame = pinfo->num;
    flow->line = line;
    flow->line_len = line_len;
}

/* First pass: link this packet to an unfinished line before it, and keep its
 * own unfinished last line for the next packet. */
static sd_notify_packet_t *analyze_packet(tvbuff_t *tvb, packet_info *pinfo, const uint8_t *buf, int length)
{
    sd_notify_flow_t *flow = get_flow(pinfo);
    sd_notify_packet_t *rec = wmem_new0(wmem_file_scope(), sd_notify_packet_t);

    if (flow->open) {
        flow->open->continued_in = pinfo->num;
        rec->continues_from = flow->open_frame;
        rec->prefix = flow->line;
        rec->prefix_len = flow->line_len;
    }
    keep_unfinished_line(flow, rec, pinfo, tvb, buf, length);
    return rec;
}

static const sd_notify_packet_t *get_packet_record(tvbuff_t *tvb, packet_info *pinfo, const uint8_t *buf,
                                                   int length)
{
    sd_notify_packet_t *rec = (sd_notify_packet_t *)p_get_proto_data(wmem_file_scope(), pinfo, proto_sd_notify, 0);

    if (!rec && !PINFO_FD_VISITED(pinfo)) {
        rec = analyze_packet(tvb, pinfo, buf, length);
        p_add_proto_data(wmem_file_scope(), pinfo, proto_sd_notify, 0, rec);
    }
    return rec;
}

/* ---- assignments ---- */

static void add_known_value(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, proto_item *value_item,
                            const known_key_t *known, int offset, int length)
{
    const char *text;
    const char *end;
    uint64_t number;

    if (known->kind == VALUE_STRING) {
        proto_tree_add_item(tree, *known->hf, tvb, offset, length, ENC_UTF_8);
        return;
    }
    text = (const char *)tvb_get_string_enc(pinfo->pool, tvb, offset, length, ENC_ASCII);
    if (!ws_strtou64(text, &end, &number) || *end != '\0') {
        expert_add_info_format(pinfo, value_item, &ei_sd_notify_not_number, "%s= expects a number", known->key);
        return;
    }
    if (known->hf == &hf_sd_notify_monotonic_usec || known->hf == &hf_sd_notify_mainpidfdid ||
        known->hf == &hf_sd_notify_watchdog_usec || known->hf == &hf_sd_notify_extend_timeout_usec) {
        proto_tree_add_uint64(tree, *known->hf, tvb, offset, length, number);
    } else if (number <= UINT32_MAX) {
        proto_tree_add_uint(tree, *known->hf, tvb, offset, length, (uint32_t)number);
    } else {
        expert_add_info_format(pinfo, value_item, &ei_sd_notify_not_number, "%s=%s is out of range", known->key,
                               text);
    }
}

/* One KEY=VALUE line, without its LF; appended to the Info column. */
static void dissect_assignment(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int offset, int length)
{
    const int eq = length > 0 ? vsock_tvb_find_uint8(tvb, offset, length, '=') : -1;
    proto_item *ti = proto_tree_add_item(tree, hf_sd_notify_assignment, tvb, offset, length, ENC_UTF_8);
    proto_tree *line_tree = proto_item_add_subtree(ti, ett_sd_notify_assignment);
    const uint8_t *key;
    const known_key_t *known;
    proto_item *value_item;

    col_append_sep_str(pinfo->cinfo, COL_INFO, ", ", tvb_format_text(pinfo->pool, tvb, offset, length));
    if (eq <= offset) {
        expert_add_info_format(pinfo, ti, &ei_sd_notify_no_equals,
                               eq < 0 ? "No '=' in the assignment" : "Assignment without a name");
        return;
    }
    proto_tree_add_item_ret_string(line_tree, hf_sd_notify_key, tvb, offset, eq - offset, ENC_UTF_8, pinfo->pool,
                                   &key);
    value_item = proto_tree_add_item(line_tree, hf_sd_notify_value, tvb, eq + 1, offset + length - eq - 1,
                                     ENC_UTF_8);
    known = find_key((const char *)key);
    if (known)
        add_known_value(tvb, pinfo, line_tree, value_item, known, eq + 1, offset + length - eq - 1);
}

/* The first line, joined to the unfinished line of an earlier packet. */
static void dissect_joined_line(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                const sd_notify_packet_t *rec, int line_end)
{
    const int joined_len = rec->prefix_len + line_end;
    uint8_t *joined = (uint8_t *)wmem_alloc(pinfo->pool, (size_t)joined_len);
    tvbuff_t *joined_tvb;
    proto_item *ti;

    memcpy(joined, rec->prefix, (size_t)rec->prefix_len);
    tvb_memcpy(tvb, &joined[rec->prefix_len], 0, line_end);
    joined_tvb = tvb_new_child_real_data(tvb, joined, joined_len, joined_len);
    add_new_data_source(pinfo, joined_tvb, "Joined sd_notify line");
    ti = proto_tree_add_uint(tree, hf_sd_notify_continues_from, tvb, 0, 0, rec->continues_from);
    proto_item_set_generated(ti);
    dissect_assignment(joined_tvb, pinfo, tree, 0, joined_len);
}

/* A last line that the next packet finishes. */
static void add_unfinished_line(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const sd_notify_packet_t *rec,
                                int offset, int length)
{
    proto_item *ti = proto_tree_add_item(tree, hf_sd_notify_fragment, tvb, offset, length, ENC_UTF_8);

    expert_add_info_format(pinfo, ti, &ei_sd_notify_line_cut, "Line continues in frame %u", rec->continued_in);
    ti = proto_tree_add_uint(tree, hf_sd_notify_continued_in, tvb, 0, 0, rec->continued_in);
    proto_item_set_generated(ti);
    col_append_sep_str(pinfo->cinfo, COL_INFO, ", ",
                       wmem_strdup_printf(pinfo->pool, "%s [continued]",
                                          tvb_format_text(pinfo->pool, tvb, offset, length)));
}

static int dissect_sd_notify(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    const uint8_t *buf = (const uint8_t *)tvb_memdup(pinfo->pool, tvb, 0, length);
    const sd_notify_packet_t *rec = get_packet_record(tvb, pinfo, buf, length);
    proto_item *ti = proto_tree_add_item(tree, proto_sd_notify, tvb, 0, -1, ENC_NA);
    proto_tree *sd_tree = proto_item_add_subtree(ti, ett_sd_notify);
    int offset = 0;

    col_set_str(pinfo->cinfo, COL_PROTOCOL, "sd_notify");
    col_clear(pinfo->cinfo, COL_INFO);
    while (offset < length) {
        const int nl = vsock_tvb_find_uint8(tvb, offset, length - offset, '\n');
        const int line_end = nl < 0 ? length : nl;

        if (nl < 0 && rec && rec->continued_in)
            add_unfinished_line(tvb, pinfo, sd_tree, rec, offset, line_end - offset);
        else if (offset == 0 && rec && rec->prefix_len > 0)
            dissect_joined_line(tvb, pinfo, sd_tree, rec, line_end);
        else if (line_end > offset)
            dissect_assignment(tvb, pinfo, sd_tree, offset, line_end - offset);
        offset = nl < 0 ? length : nl + 1;
    }
    if (rec && rec->line_too_long)
        expert_add_info(pinfo, ti, &ei_sd_notify_line_too_long);
    return length;
}

/* Does the payload start with an assignment to a well-known key (or an
 * X_ extension)? A first line cut short may be a key's beginning. */
static bool starts_with_assignment(tvbuff_t *tvb)
{
    const int length = (int)tvb_captured_length(tvb);
    const int limit = MIN(length, 64);
    char key[65];
    int i = 0;

    for (i = 0; i < limit; i++) {
        const uint8_t c = vsock_tvb_get_uint8(tvb, i);

        if (c == '=')
            break;
        if (!((c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
            return false;
        key[i] = (char)c;
    }
    key[i] = '\0';
    if (i == 0)
        return false;
    if (i < limit)                  /* KEY= */
        return find_key(key) != NULL || strncmp(key, "X_", 2) == 0;
    if (i < length || i < 2)        /* too long for a key */
        return false;
    for (size_t k = 0; k < array_length(known_keys); k++) {
        if (strncmp(known_keys[k].key, key, (size_t)i) == 0)
            return true;
    }
    return false;
}

static vsock_cb_bool dissect_sd_notify_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    if (!starts_with_assignment(tvb))
        return false;
    /* The rest of the message, if cut, comes on the same connection. */
    vsock_set_connection_dissector(pinfo, sd_notify_handle);
    dissect_sd_notify(tvb, pinfo, tree, data);
    return true;
}

void proto_register_sd_notify(void)
{
    static hf_register_info hf[] = {
        { &hf_sd_notify_assignment,
          { "Assignment", "sd_notify.assignment", FT_STRING, BASE_NONE, NULL, 0x0, "One KEY=VALUE line", HFILL } },
        { &hf_sd_notify_key,
          { "Key", "sd_notify.key", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_value,
          { "Value", "sd_notify.value", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_fragment,
          { "Line fragment", "sd_notify.fragment", FT_STRING, BASE_NONE, NULL, 0x0,
            "The start of a line that the next packet finishes", HFILL } },
        { &hf_sd_notify_continued_in,
          { "Continued in frame", "sd_notify.continued_in", FT_FRAMENUM, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_continues_from,
          { "Continues from frame", "sd_notify.continues_from", FT_FRAMENUM, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_ready,
          { "READY", "sd_notify.ready", FT_UINT32, BASE_DEC, NULL, 0x0, "Start-up or reload finished", HFILL } },
        { &hf_sd_notify_reloading,
          { "RELOADING", "sd_notify.reloading", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_stopping,
          { "STOPPING", "sd_notify.stopping", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_monotonic_usec,
          { "MONOTONIC_USEC", "sd_notify.monotonic_usec", FT_UINT64, BASE_DEC, NULL, 0x0,
            "CLOCK_MONOTONIC when the message was made (us)", HFILL } },
        { &hf_sd_notify_status,
          { "STATUS", "sd_notify.status", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_notifyaccess,
          { "NOTIFYACCESS", "sd_notify.notifyaccess", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_errno,
          { "ERRNO", "sd_notify.errno", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_buserror,
          { "BUSERROR", "sd_notify.buserror", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_varlinkerror,
          { "VARLINKERROR", "sd_notify.varlinkerror", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_exit_status,
          { "EXIT_STATUS", "sd_notify.exit_status", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_mainpid,
          { "MAINPID", "sd_notify.mainpid", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_mainpidfdid,
          { "MAINPIDFDID", "sd_notify.mainpidfdid", FT_UINT64, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_watchdog,
          { "WATCHDOG", "sd_notify.watchdog", FT_STRING, BASE_NONE, NULL, 0x0, "1 (keep-alive) or trigger", HFILL } },
        { &hf_sd_notify_watchdog_usec,
          { "WATCHDOG_USEC", "sd_notify.watchdog_usec", FT_UINT64, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_extend_timeout_usec,
          { "EXTEND_TIMEOUT_USEC", "sd_notify.extend_timeout_usec", FT_UINT64, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_fdstore,
          { "FDSTORE", "sd_notify.fdstore", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_fdstoreremove,
          { "FDSTOREREMOVE", "sd_notify.fdstoreremove", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_fdname,
          { "FDNAME", "sd_notify.fdname", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_barrier,
          { "BARRIER", "sd_notify.barrier", FT_UINT32, BASE_DEC, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_unit_active,
          { "X_SYSTEMD_UNIT_ACTIVE", "sd_notify.x_systemd_unit_active", FT_STRING, BASE_NONE, NULL, 0x0,
            "A unit the guest's service manager reached", HFILL } },
        { &hf_sd_notify_signals_level,
          { "X_SYSTEMD_SIGNALS_LEVEL", "sd_notify.x_systemd_signals_level", FT_UINT32, BASE_DEC, NULL, 0x0, NULL,
            HFILL } },
        { &hf_sd_notify_hostname,
          { "X_SYSTEMD_HOSTNAME", "sd_notify.x_systemd_hostname", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_machine_id,
          { "X_SYSTEMD_MACHINE_ID", "sd_notify.x_systemd_machine_id", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_sd_notify_shutdown,
          { "X_SYSTEMD_SHUTDOWN", "sd_notify.x_systemd_shutdown", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_sd_notify,
        &ett_sd_notify_assignment,
    };
    static ei_register_info ei[] = {
        { &ei_sd_notify_no_equals,
          { "sd_notify.assignment.bad", PI_MALFORMED, PI_WARN, "Not a KEY=VALUE assignment", EXPFILL } },
        { &ei_sd_notify_not_number,
          { "sd_notify.value.not_number", PI_PROTOCOL, PI_WARN, "Value is not a number", EXPFILL } },
        { &ei_sd_notify_line_cut,
          { "sd_notify.line.continued", PI_REASSEMBLE, PI_CHAT, "Line continues in a later packet", EXPFILL } },
        { &ei_sd_notify_line_too_long,
          { "sd_notify.line.too_long", PI_REASSEMBLE, PI_WARN, "Line longer than 64 KiB: not joined further",
            EXPFILL } },
    };
    expert_module_t *expert_sd_notify;

    proto_sd_notify = proto_register_protocol("systemd service notification", "sd_notify", "sd_notify");
    proto_register_field_array(proto_sd_notify, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_sd_notify = expert_register_protocol(proto_sd_notify);
    expert_register_field_array(expert_sd_notify, ei, array_length(ei));

    sd_notify_handle = register_dissector("sd_notify", dissect_sd_notify, proto_sd_notify);
}

void proto_reg_handoff_sd_notify(void)
{
    /* The VMM chooses the port: recognised by content, or chosen with Decode As. */
    heur_dissector_add("vsock", dissect_sd_notify_heur, "systemd notification over vsock", "sd_notify_vsock",
                       proto_sd_notify, HEURISTIC_ENABLE);
    dissector_add_for_decode_as("vsock.port", sd_notify_handle);
}
