/* packet-qga.c
 * The QEMU Guest Agent protocol (qemu-ga) over vsock, as
 * `qemu-ga --method=vsock-listen --path=CID:PORT` serves it: QMP-style JSON
 * objects one after the other, {"execute": "guest-ping"} from the host and
 * {"return": ...} or {"error": {"class": ..., "desc": ...}} from the agent,
 * answered in order. guest-sync-delimited puts a 0xFF byte before its reply
 * (and clients before their command) to resynchronise the stream.
 *
 * The port is whatever the VM's owner chose: the connection is recognised by
 * its first command, and each message goes to Wireshark's JSON dissector.
 *
 * Protocol: qemu docs/interop/qemu-ga.rst and qga/qapi-schema.json.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/conversation.h>
#include <epan/expert.h>
#include <epan/proto_data.h>

#include "vsock-compat.h"
#include "packet-vsock-json.h"
#include "packet-vsock-payload.h"

#define QGA_DELIMITER      0xFF
/* qemu-ga's own limit on a request; a reply (guest-file-read) may be bigger,
 * but an object this long is not worth rescanning at every segment. */
#define QGA_MAX_MESSAGE    (4u << 20)
/* Commands kept waiting for a reply per connection: oldest dropped past it. */
#define QGA_MAX_PENDING    256

#define QGA_KEY_MSG_COUNT  UINT32_MAX

enum qga_msg_type {
    QGA_UNKNOWN = 0,
    QGA_COMMAND = 1,
    QGA_RETURN  = 2,
    QGA_ERROR   = 3
};

void proto_register_qga(void);
void proto_reg_handoff_qga(void);

static const value_string qga_msg_type_vals[] = {
    { QGA_UNKNOWN, "Unknown" },
    { QGA_COMMAND, "Command" },
    { QGA_RETURN,  "Return" },
    { QGA_ERROR,   "Error" },
    { 0, NULL }
};

static int proto_qga = -1;

static int hf_qga_msg_type = -1;
static int hf_qga_command = -1;
static int hf_qga_error_class = -1;
static int hf_qga_error_desc = -1;
static int hf_qga_delimiter = -1;
static int hf_qga_invalid = -1;
static int hf_qga_fragment = -1;
static int hf_qga_response_in = -1;
static int hf_qga_response_to = -1;
static int hf_qga_time = -1;

static int ett_qga = -1;

static expert_field ei_qga_json_invalid = EI_INIT;
static expert_field ei_qga_incomplete = EI_INIT;
static expert_field ei_qga_too_long = EI_INIT;
static expert_field ei_qga_unknown = EI_INIT;
static expert_field ei_qga_no_command = EI_INIT;
static expert_field ei_qga_no_reply = EI_INIT;
static expert_field ei_qga_error = EI_INIT;

static dissector_handle_t qga_handle;
static dissector_handle_t json_handle;

/* Members a message is named by. */
enum { M_EXECUTE, M_EXEC_OOB, M_RETURN, M_ERROR, M_ERROR_CLASS, M_ERROR_DESC, M_COUNT };

/* One command and, once seen, its reply (wmem_file_scope). */
typedef struct qga_call {
    uint32_t cmd_frame;
    uint32_t reply_frame;      /* 0 until the reply is seen */
    nstime_t cmd_time;
    const char *name;
} qga_call_t;

/* Per connection: commands still waiting for their reply, oldest first. */
typedef struct qga_conv {
    wmem_list_t *pending;
} qga_conv_t;

/* First-pass result for one message; read on every pass. */
typedef struct qga_msg_info {
    qga_call_t *call;          /* its command, or the command it answers */
} qga_msg_info_t;

/* Commands that do not reply when they succeed (qga/qapi-schema.json). */
static bool command_has_reply(const char *name)
{
    static const char *const silent[] = {
        "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
    };

    for (size_t i = 0; i < array_length(silent); i++) {
        if (strcmp(name, silent[i]) == 0)
            return false;
    }
    return true;
}

/* ---- request/reply matching ---- */

static qga_conv_t *get_qga_conv(packet_info *pinfo)
{
    conversation_t *conv = find_or_create_conversation(pinfo);
    qga_conv_t *qconv = (qga_conv_t *)conversation_get_proto_data(conv, proto_qga);

    if (!qconv) {
        qconv = wmem_new0(wmem_file_scope(), qga_conv_t);
        qconv->pending = wmem_list_new(wmem_file_scope());
        conversation_add_proto_data(conv, proto_qga, qconv);
    }
    return qconv;
}

static qga_msg_info_t *analyze_message(packet_info *pinfo, enum qga_msg_type type, const char *command,
                                       bool parse_error)
{
    qga_conv_t *qconv = get_qga_conv(pinfo);
    qga_msg_info_t *info = wmem_new0(wmem_file_scope(), qga_msg_info_t);
    wmem_list_frame_t *oldest;

    if (type == QGA_COMMAND) {
        qga_call_t *call = wmem_new0(wmem_file_scope(), qga_call_t);

        call->cmd_frame = pinfo->num;
        call->cmd_time = pinfo->abs_ts;
        call->name = command ? wmem_strdup(wmem_file_scope(), command) : NULL;
        info->call = call;
        if (!command || command_has_reply(command)) {
            if (wmem_list_count(qconv->pending) >= QGA_MAX_PENDING)
                wmem_list_remove_frame(qconv->pending, wmem_list_head(qconv->pending));
            wmem_list_append(qconv->pending, call);
        }
    } else if ((type == QGA_RETURN || type == QGA_ERROR) && !parse_error) {
        /* The agent answers in order. */
        oldest = wmem_list_head(qconv->pending);
        if (oldest) {
            info->call = (qga_call_t *)wmem_list_frame_data(oldest);
            info->call->reply_frame = pinfo->num;
            wmem_list_remove_frame(qconv->pending, oldest);
        }
    }
    return info;
}

/* Index of this message among those dissected in the frame: the same on every pass. */
static uint32_t next_msg_index(packet_info *pinfo)
{
    uint32_t count = GPOINTER_TO_UINT(p_get_proto_data(pinfo->pool, pinfo, proto_qga, QGA_KEY_MSG_COUNT));

    p_set_proto_data(pinfo->pool, pinfo, proto_qga, QGA_KEY_MSG_COUNT, GUINT_TO_POINTER(count + 1));
    return count;
}

static const qga_msg_info_t *get_msg_info(packet_info *pinfo, uint32_t msg_index, enum qga_msg_type type,
                                          const char *command, bool parse_error)
{
    qga_msg_info_t *info = (qga_msg_info_t *)p_get_proto_data(wmem_file_scope(), pinfo, proto_qga, msg_index);

    if (!info && !PINFO_FD_VISITED(pinfo)) {
        info = analyze_message(pinfo, type, command, parse_error);
        p_add_proto_data(wmem_file_scope(), pinfo, proto_qga, msg_index, info);
    }
    return info;
}

/* ---- one message ---- */

/* Over vsock the application's summary replaces the transport's; several
 * messages of one frame are listed one after the other. */
static void append_info(packet_info *pinfo, uint32_t msg_index, const char *text)
{
    if (msg_index == 0) {
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "QGA");
        col_clear(pinfo->cinfo, COL_INFO);
    }
    col_append_sep_str(pinfo->cinfo, COL_INFO, ", ", text);
    col_set_fence(pinfo->cinfo, COL_INFO);
}


static void add_call_items(tvbuff_t *tvb, proto_tree *tree, packet_info *pinfo, enum qga_msg_type type,
                           const qga_call_t *call)
{
    proto_item *ti;
    nstime_t delta;

    if (type == QGA_COMMAND) {
        if (call->reply_frame) {
            ti = proto_tree_add_uint(tree, hf_qga_response_in, tvb, 0, 0, call->reply_frame);
            proto_item_set_generated(ti);
        }
        return;
    }
    if (call->name) {
        ti = proto_tree_add_string(tree, hf_qga_command, tvb, 0, 0, call->name);
        proto_item_set_generated(ti);
    }
    ti = proto_tree_add_uint(tree, hf_qga_response_to, tvb, 0, 0, call->cmd_frame);
    proto_item_set_generated(ti);
    nstime_delta(&delta, &pinfo->abs_ts, &call->cmd_time);
    ti = proto_tree_add_time(tree, hf_qga_time, tvb, 0, 0, &delta);
    proto_item_set_generated(ti);
}

static enum qga_msg_type message_type(const vsock_json_member_t *m)
{
    if (m[M_EXECUTE].present || m[M_EXEC_OOB].present)
        return QGA_COMMAND;
    if (m[M_ERROR].present)
        return QGA_ERROR;
    if (m[M_RETURN].present)
        return QGA_RETURN;
    return QGA_UNKNOWN;
}

/* "Command guest-ping", "Return guest-ping", "Error guest-exec: GenericError" */
static const char *summary(packet_info *pinfo, enum qga_msg_type type, const char *name, const char *error_class)
{
    wmem_strbuf_t *buf = wmem_strbuf_new(pinfo->pool, val_to_str_const(type, qga_msg_type_vals, "Unknown"));

    if (name)
        wmem_strbuf_append_printf(buf, " %s", name);
    if (type == QGA_ERROR && error_class)
        wmem_strbuf_append_printf(buf, ": %s", error_class);
    return wmem_strbuf_get_str(buf);
}

/* One whole JSON object; tvb holds exactly it. */
static void dissect_qga_message(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, vsock_json_member_t *m)
{
    const uint32_t msg_index = next_msg_index(pinfo);
    const enum qga_msg_type type = message_type(m);
    const char *command = m[M_EXECUTE].string ? m[M_EXECUTE].string : m[M_EXEC_OOB].string;
    /* qemu-ga answers bytes it cannot parse (a client's 0xFF delimiter too)
     * with an error of their own: it answers no command. */
    const bool parse_error = type == QGA_ERROR && m[M_ERROR_DESC].string &&
                             g_str_has_prefix(m[M_ERROR_DESC].string, "JSON parse error");
    const qga_msg_info_t *info = get_msg_info(pinfo, msg_index, type, command, parse_error);
    const qga_call_t *call = info ? info->call : NULL;
    const char *name = type == QGA_COMMAND ? command : call ? call->name : NULL;
    proto_item *qga_item, *ti;
    proto_tree *qga_tree;

    qga_item = proto_tree_add_item(tree, proto_qga, tvb, 0, -1, ENC_NA);
    qga_tree = proto_item_add_subtree(qga_item, ett_qga);
    ti = proto_tree_add_uint(qga_tree, hf_qga_msg_type, tvb, 0, 0, type);
    proto_item_set_generated(ti);
    if (type == QGA_COMMAND && command)
        proto_tree_add_string(qga_tree, hf_qga_command, tvb, 0, -1, command);
    if (type == QGA_ERROR) {
        if (m[M_ERROR_CLASS].string)
            proto_tree_add_string(qga_tree, hf_qga_error_class, tvb, 0, -1, m[M_ERROR_CLASS].string);
        if (m[M_ERROR_DESC].string)
            proto_tree_add_string(qga_tree, hf_qga_error_desc, tvb, 0, -1, m[M_ERROR_DESC].string);
        expert_add_info_format(pinfo, qga_item, &ei_qga_error, "Error reply: %s",
                               m[M_ERROR_CLASS].string ? m[M_ERROR_CLASS].string : "no class");
    }
    if (call)
        add_call_items(tvb, qga_tree, pinfo, type, call);
    if ((type == QGA_RETURN || type == QGA_ERROR) && !call && !parse_error)
        expert_add_info(pinfo, qga_item, &ei_qga_no_command);
    if (type == QGA_COMMAND && call && !call->reply_frame && command && command_has_reply(command) &&
        PINFO_FD_VISITED(pinfo))
        expert_add_info_format(pinfo, qga_item, &ei_qga_no_reply, "No reply to %s in the capture", command);
    if (type == QGA_UNKNOWN)
        expert_add_info(pinfo, qga_item, &ei_qga_unknown);

    proto_item_append_text(qga_item, ", %s", summary(pinfo, type, name, m[M_ERROR_CLASS].string));
    append_info(pinfo, msg_index, summary(pinfo, type, name, m[M_ERROR_CLASS].string));
    vsock_json_show(json_handle, tvb, pinfo, qga_tree);
}

/* Bytes that are not JSON, up to the end of their line. */
static int dissect_invalid(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int start, int bad, int length)
{
    int end = vsock_tvb_find_uint8(tvb, bad, length - bad, '\n');
    proto_item *ti;

    end = end < 0 ? length : end + 1;
    ti = proto_tree_add_item(tree, proto_qga, tvb, start, end - start, ENC_NA);
    proto_item_append_text(ti, ", not JSON");
    ti = proto_tree_add_item(proto_item_add_subtree(ti, ett_qga), hf_qga_invalid, tvb, start, end - start, ENC_NA);
    expert_add_info_format(pinfo, ti, &ei_qga_json_invalid, "Not JSON from byte %d of the message on", bad - start);
    append_info(pinfo, next_msg_index(pinfo), "[Not JSON]");
    return end;
}

/* A message this packet does not complete while nobody can reassemble it. */
static void dissect_incomplete(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, int start, int length,
                               expert_field *why)
{
    proto_item *ti = proto_tree_add_item(tree, proto_qga, tvb, start, length - start, ENC_NA);

    proto_item_append_text(ti, ", incomplete message");
    ti = proto_tree_add_item(proto_item_add_subtree(ti, ett_qga), hf_qga_fragment, tvb, start, length - start,
                             ENC_NA);
    expert_add_info(pinfo, ti, why);
    append_info(pinfo, next_msg_index(pinfo), "[Incomplete message]");
}

/* Whitespace and sync delimiters before a message. */
static int skip_separators(tvbuff_t *tvb, proto_tree *tree, const uint8_t *buf, int offset, int length)
{
    while (offset < length) {
        if (buf[offset] == QGA_DELIMITER)
            proto_tree_add_item(tree, hf_qga_delimiter, tvb, offset, 1, ENC_NA);
        else if (!g_ascii_isspace(buf[offset]))
            break;
        offset++;
    }
    return offset;
}

/* Stream payload: any number of messages, the last one possibly incomplete. */
static int dissect_qga(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data _U_)
{
    const int length = (int)tvb_captured_length(tvb);
    const uint8_t *buf = (const uint8_t *)tvb_memdup(pinfo->pool, tvb, 0, length);
    int offset = 0;

    while ((offset = skip_separators(tvb, tree, buf, offset, length)) < length) {
        vsock_json_member_t m[M_COUNT] = {
            [M_EXECUTE] = { "execute", false, NULL },
            [M_EXEC_OOB] = { "exec-oob", false, NULL },
            [M_RETURN] = { "return", false, NULL },
            [M_ERROR] = { "error", false, NULL },
            [M_ERROR_CLASS] = { "error.class", false, NULL },
            [M_ERROR_DESC] = { "error.desc", false, NULL },
        };
        int end = length;

        switch (vsock_json_scan(buf, offset, length, pinfo->pool, m, M_COUNT, &end)) {
        case VSOCK_JSON_COMPLETE:
            dissect_qga_message(tvb_new_subset_length(tvb, offset, end - offset), pinfo, tree, m);
            offset = end;
            break;
        case VSOCK_JSON_INVALID:
            offset = dissect_invalid(tvb, pinfo, tree, offset, end, length);
            break;
        case VSOCK_JSON_INCOMPLETE:
        default:
            if ((unsigned)(length - offset) > QGA_MAX_MESSAGE) {
                dissect_incomplete(tvb, pinfo, tree, offset, length, &ei_qga_too_long);
                return length;
            }
            if (pinfo->can_desegment > 0) {
                pinfo->desegment_offset = offset;
                pinfo->desegment_len = DESEGMENT_ONE_MORE_SEGMENT;
                return length;
            }
            dissect_incomplete(tvb, pinfo, tree, offset, length, &ei_qga_incomplete);
            return length;
        }
    }
    return length;
}

/* The first command of a connection: {"execute": ... or {"exec-oob": ...,
 * possibly after a sync delimiter. */
static bool starts_with_command(tvbuff_t *tvb)
{
    const int length = (int)tvb_captured_length(tvb);
    int offset = 0;

    while (offset < length && offset < 16 &&
           (vsock_tvb_get_uint8(tvb, offset) == QGA_DELIMITER || g_ascii_isspace(vsock_tvb_get_uint8(tvb, offset))))
        offset++;
    if (offset >= length || vsock_tvb_get_uint8(tvb, offset) != '{')
        return false;
    offset++;
    while (offset < length && g_ascii_isspace(vsock_tvb_get_uint8(tvb, offset)))
        offset++;
    return tvb_strneql(tvb, offset, "\"execute\"", 9) == 0 || tvb_strneql(tvb, offset, "\"exec-oob\"", 10) == 0;
}

static vsock_cb_bool dissect_qga_heur(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    if (!starts_with_command(tvb))
        return false;
    /* The agent's replies come on the same connection. */
    vsock_set_connection_dissector(pinfo, qga_handle);
    dissect_qga(tvb, pinfo, tree, data);
    return true;
}

void proto_register_qga(void)
{
    static hf_register_info hf[] = {
        { &hf_qga_msg_type,
          { "Message type", "qga.msg_type", FT_UINT8, BASE_DEC, VALS(qga_msg_type_vals), 0x0,
            "Command (\"execute\"), return or error", HFILL } },
        { &hf_qga_command,
          { "Command", "qga.command", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_qga_error_class,
          { "Error class", "qga.error.class", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_qga_error_desc,
          { "Error description", "qga.error.desc", FT_STRING, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_qga_delimiter,
          { "Sync delimiter", "qga.delimiter", FT_UINT8, BASE_HEX, NULL, 0x0,
            "0xFF: resynchronises the stream (guest-sync-delimited)", HFILL } },
        { &hf_qga_invalid,
          { "Not JSON", "qga.invalid", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_qga_fragment,
          { "Incomplete message", "qga.fragment", FT_BYTES, BASE_NONE, NULL, 0x0, NULL, HFILL } },
        { &hf_qga_response_in,
          { "Response in", "qga.response_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
            "The reply to this command is in this frame", HFILL } },
        { &hf_qga_response_to,
          { "Command in", "qga.response_to", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
            "This is a reply to the command in this frame", HFILL } },
        { &hf_qga_time,
          { "Time since command", "qga.time", FT_RELATIVE_TIME, BASE_NONE, NULL, 0x0, NULL, HFILL } },
    };
    static int *ett[] = {
        &ett_qga,
    };
    static ei_register_info ei[] = {
        { &ei_qga_json_invalid,
          { "qga.json.invalid", PI_MALFORMED, PI_ERROR, "Not JSON", EXPFILL } },
        { &ei_qga_incomplete,
          { "qga.incomplete", PI_REASSEMBLE, PI_NOTE, "Message continues beyond this packet, and no reassembly",
            EXPFILL } },
        { &ei_qga_too_long,
          { "qga.too_long", PI_REASSEMBLE, PI_WARN, "Message longer than 4 MiB: not reassembled", EXPFILL } },
        { &ei_qga_unknown,
          { "qga.unknown", PI_PROTOCOL, PI_WARN, "Neither a command nor a reply", EXPFILL } },
        { &ei_qga_no_command,
          { "qga.reply.no_command", PI_SEQUENCE, PI_NOTE, "Reply without a command in the capture", EXPFILL } },
        { &ei_qga_no_reply,
          { "qga.command.no_reply", PI_SEQUENCE, PI_NOTE, "No reply in the capture", EXPFILL } },
        { &ei_qga_error,
          { "qga.error", PI_RESPONSE_CODE, PI_NOTE, "Error reply", EXPFILL } },
    };
    expert_module_t *expert_qga;

    proto_qga = proto_register_protocol("QEMU Guest Agent", "QGA", "qga");
    proto_register_field_array(proto_qga, hf, array_length(hf));
    proto_register_subtree_array(ett, array_length(ett));
    expert_qga = expert_register_protocol(proto_qga);
    expert_register_field_array(expert_qga, ei, array_length(ei));

    qga_handle = register_dissector("qga", dissect_qga, proto_qga);
}

void proto_reg_handoff_qga(void)
{
    /* No fixed port: recognised by its first command, or chosen with Decode As. */
    heur_dissector_add("vsock", dissect_qga_heur, "QEMU Guest Agent over vsock", "qga_vsock", proto_qga,
                       HEURISTIC_ENABLE);
    dissector_add_for_decode_as("vsock.port", qga_handle);
    json_handle = find_dissector_add_dependency("json", proto_qga);
}
