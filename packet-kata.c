/* packet-kata.c
 * The Kata Containers agent's text channels over vsock (the ttrpc API on port
 * 1024 is packet-ttrpc.c):
 * - port 1025: the agent's log, read by the runtime and written to its own
 *   log; one record per line, JSON from the agent's slog logger
 *   ({"msg": ..., "level": "INFO", "subsystem": ..., ...}), plain text otherwise;
 * - port 1026: the debug console (agent.debug_console), a shell's terminal:
 *   what the host types and what the shell prints.
 * Ports: kata-containers src/libs/kata-types/src/config/default.rs
 * (DEFAULT_AGENT_LOG_PORT, DEFAULT_AGENT_DBG_CONSOLE_PORT).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/expert.h>

#include "vsock-compat.h"
#include "packet-vsock-json.h"
#include "packet-vsock-text.h"

#define KATA_LOG_PORT      1025
#define KATA_CONSOLE_PORT  1026
/* A log line longer than this is shown as it comes, not reassembled. */
#define KATA_MAX_LINE      (1u << 20)

void proto_register_kata(void);
void proto_reg_handoff_kata(void);

static int proto_kata = -1;
/* One name per channel, for Decode As (-d vsock.port==N,kata.console). */
static int proto_kata_log = -1;
static int proto_kata_console = -1;

static int hf_kata_channel = -1;
static int hf_kata_log_line = -1;
static int hf_kata_log_level = -1;
static int hf_kata_log_msg = -1;
static int hf_kata_log_subsystem = -1;
static int hf_kata_log_source = -1;
static int hf_kata_console_line = -1;

static int ett_kata = -1;
static int ett_kata_line = -1;

static expert_field ei_kata_log_incomplete = EI_INIT;
static expert_field ei_kata_log_not_json = EI_INIT;

static dissector_handle_t log_handle;
static dissector_handle_t console_handle;
static dissector_handle_t json_handle;

enum { M_LEVEL, M_MSG, M_SUBSYSTEM, M_SOURCE, M_COUNT };

static proto_tree *add_kata_tree(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const char *channel)
{
    proto_item *ti = proto_tree_add_item(tree, proto_kata, tvb, 0, -1, ENC_NA);
    proto_tree *kata_tree = proto_item_add_subtree(ti, ett_kata);
    proto_item *channel_item = proto_tree_add_string(kata_tree, hf_kata_channel, tvb, 0, 0, channel);

    proto_item_set_generated(channel_item);
    proto_item_append_text(ti, ", %s", channel);
    col_set_str(pinfo->cinfo, COL_PROTOCOL, "Kata");
    col_clear(pinfo->cinfo, COL_INFO);
    return kata_tree;
}


/* A slog JSON record: its level, message and origin; NULL if the line is not
 * one JSON object. */
static const char *dissect_json_record(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, proto_item *line_item,
                                       int offset, int length)
{
    const uint8_t *buf = (const uint8_t *)tvb_memdup(pinfo->pool, tvb, offset, length);
    vsock_json_member_t m[M_COUNT] = {
        [M_LEVEL] = { "level", false, NULL },
        [M_MSG] = { "msg", false, NULL },
        [M_SUBSYSTEM] = { "subsystem", false, NULL },
        [M_SOURCE] = { "source", false, NULL },
    };
    int end = 0;

    if (vsock_json_scan(buf, 0, length, pinfo->pool, m, M_COUNT, &end) != VSOCK_JSON_COMPLETE ||
        tvb_skip_wsp(tvb, offset + end, length - end) != offset + length) {
        expert_add_info(pinfo, line_item, &ei_kata_log_not_json);
        return NULL;
    }
    if (m[M_LEVEL].string)
        proto_tree_add_string(tree, hf_kata_log_level, tvb, offset, length, m[M_LEVEL].string);
    if (m[M_MSG].string)
        proto_tree_add_string(tree, hf_kata_log_msg, tvb, offset, length, m[M_MSG].string);
    if (m[M_SUBSYSTEM].string)
        proto_tree_add_string(tree, hf_kata_log_subsystem, tvb, offset, length, m[M_SUBSYSTEM].string);
    if (m[M_SOURCE].string)
        proto_tree_add_string(tree, hf_kata_log_source, tvb, offset, length, m[M_SOURCE].string);
    vsock_json_show(json_handle, tvb_new_subset_length(tvb, offset, end), pinfo, tree);
    return wmem_strdup_printf(pinfo->pool, "%s %s", m[M_LEVEL].string ? m[M_LEVEL].string : "-",
                              m[M_MSG].string ? m[M_MSG].string : "");
}

/* One log line, without its line end; returns its Info summary. */
static const char *dissect_log_line(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int offset, int length)
{
    proto_item *ti = proto_tree_add_item(tree, hf_kata_log_line, tvb, offset, length, ENC_UTF_8);
    const char *summary = NULL;

    if (length > 0 && vsock_tvb_get_uint8(tvb, offset) == '{')
        summary = dissect_json_record(tvb, pinfo, proto_item_add_subtree(ti, ett_kata_line), ti, offset, length);
    return summary ? summary : tvb_format_text(pinfo->pool, tvb, offset, length);
}

/* Log records are text: a control byte other than tab and line ends among
 * the first bytes means something else uses the port. Without this check,
 * binary data without a line end was collected up to KATA_MAX_LINE, and
 * searched again for a line end at every packet. */
static bool looks_like_text(tvbuff_t *tvb)
{
    const int n = MIN((int)tvb_captured_length(tvb), 64);

    for (int i = 0; i < n; i++) {
        const uint8_t c = vsock_tvb_get_uint8(tvb, i);

        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return false;
    }
    return true;
}

static int dissect_kata_log(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    proto_tree *kata_tree = NULL;
    const char *first = NULL;
    unsigned n_lines = 0;
    int offset = 0;

    if (!looks_like_text(tvb))
        return 0;

    while (offset < length) {
        const int nl = vsock_tvb_find_uint8(tvb, offset, length - offset, '\n');
        const bool cut = nl < 0;
        int line_len = cut ? length - offset : nl - offset;
        const char *summary;

        /* Records end with LF: wait for the rest of this one. */
        if (cut && pinfo->can_desegment > 0 && (unsigned)line_len <= KATA_MAX_LINE) {
            pinfo->desegment_offset = offset;
            pinfo->desegment_len = DESEGMENT_ONE_MORE_SEGMENT;
            break;
        }
        if (!kata_tree)
            kata_tree = add_kata_tree(tvb, pinfo, tree, "Agent log");
        if (!cut && line_len > 0 && vsock_tvb_get_uint8(tvb, nl - 1) == '\r')
            line_len--;
        summary = dissect_log_line(tvb, pinfo, kata_tree, offset, line_len);
        if (cut)
            expert_add_info(pinfo, proto_tree_get_parent(kata_tree), &ei_kata_log_incomplete);
        n_lines++;
        first = first ? first : summary;
        offset = cut ? length : nl + 1;
    }
    if (n_lines)
        col_add_fstr(pinfo->cinfo, COL_INFO, "Agent log: %s", vsock_lines_summary(pinfo, first, n_lines));
    return length;
}

/* The host connects to the guest's console port: what it sends is typed. */
static int dissect_kata_console(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    const uint32_t port = pinfo->match_uint ? pinfo->match_uint : KATA_CONSOLE_PORT;
    const bool input = pinfo->destport == port;
    proto_tree *kata_tree = add_kata_tree(tvb, pinfo, tree, input ? "Debug console input" : "Debug console output");
    const char *first;
    unsigned n_lines = vsock_add_text_lines(tvb, pinfo, kata_tree, hf_kata_console_line, 0, length, &first);

    col_add_fstr(pinfo->cinfo, COL_INFO, "Debug console %s: %s", input ? "input" : "output",
                 vsock_lines_summary(pinfo, first, n_lines));
    return length;
}

void proto_register_kata(void)
{
    static hf_register_info hf[] = {
        { &hf_kata_channel,
          { "Channel", "kata.channel", FT_STRING, BASE_NONE, NULL, 0x0,
            "Agent log or debug console", HFILL } },
        { &hf_kata_log_line,
          { "Log line", "kata.log.line", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_kata_log_level,
          { "Level", "kata.log.level", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_kata_log_msg,
          { "Message", "kata.log.msg", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_kata_log_subsystem,
          { "Subsystem", "kata.log.subsystem", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_kata_log_source,
          { "Source", "kata.log.source", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_kata_console_line,
          { "Console line", "kata.console.line", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_kata,
        &ett_kata_line,
    };
    static ei_register_info ei[] = {
        { &ei_kata_log_incomplete,
          { "kata.log.incomplete", PI_REASSEMBLE, PI_NOTE, "Log line without its end, and no reassembly",
            EXPFILL } },
        { &ei_kata_log_not_json,
          { "kata.log.not_json", PI_PROTOCOL, PI_NOTE, "Log line starts like JSON but is not", EXPFILL } },
    };
    expert_module_t *expert_kata;

    proto_kata = proto_register_protocol("Kata Containers agent log and console", "Kata", "kata");
    proto_register_field_array(proto_kata, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_kata = expert_register_protocol(proto_kata);
    expert_register_field_array(expert_kata, ei, array_length(ei));

    proto_kata_log = proto_register_protocol_in_name_only("Kata Containers agent log", "Kata log", "kata.log",
                                                          proto_kata, FT_PROTOCOL);
    proto_kata_console = proto_register_protocol_in_name_only("Kata Containers debug console", "Kata console",
                                                              "kata.console", proto_kata, FT_PROTOCOL);
    log_handle = register_dissector("kata_log", dissect_kata_log, proto_kata_log);
    console_handle = register_dissector("kata_console", dissect_kata_console, proto_kata_console);
}

void proto_reg_handoff_kata(void)
{
    /* The agent's well-known ports; Decode As changes them. */
    dissector_add_uint("vsock.port", KATA_LOG_PORT, log_handle);
    dissector_add_uint("vsock.port", KATA_CONSOLE_PORT, console_handle);
    dissector_add_for_decode_as("vsock.port", log_handle);
    dissector_add_for_decode_as("vsock.port", console_handle);
    json_handle = find_dissector_add_dependency("json", proto_kata);
}
