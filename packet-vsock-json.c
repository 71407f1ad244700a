/* packet-vsock-json.c
 * A JSON syntax scanner (RFC 8259) for protocols that send one JSON object
 * after another on a stream: it tells where an object ends, whether more bytes
 * are needed, or where the bytes stop being JSON, and picks out the string
 * members a dissector names its messages by. Wireshark's JSON dissector shows
 * the object afterwards; it cannot say where an object ends.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/exceptions.h>
#include <epan/show_exception.h>

#include "packet-vsock-json.h"

/* Deeper nesting is refused: no agent sends it, and it bounds the stack. */
#define JSON_MAX_DEPTH 64
/* Members are looked for in the object and one level below. */
#define JSON_KEY_LEVELS 2

enum json_expect {
    EXPECT_VALUE,
    EXPECT_VALUE_OR_END,     /* after '[' */
    EXPECT_KEY,
    EXPECT_KEY_OR_END,       /* after '{' */
    EXPECT_COLON,
    EXPECT_COMMA_OR_END
};

typedef struct json_scanner {
    const uint8_t *buf;
    int len;
    int pos;
    int depth;
    uint8_t open[JSON_MAX_DEPTH];   /* '{' or '[' per open container */
    int key_start[JSON_KEY_LEVELS + 1]; /* current member name at depths 1 and 2 */
    int key_len[JSON_KEY_LEVELS + 1];
    bool member_value;              /* the value being read belongs to a member */
    wmem_allocator_t *scope;
    vsock_json_member_t *members;
    unsigned n_members;
} json_scanner_t;

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Does buf[start, start+len) equal text? */
static bool bytes_equal(const json_scanner_t *s, int start, int len, const char *text, size_t text_len)
{
    if ((size_t)len != text_len)
        return false;
    for (int i = 0; i < len; i++) {
        if (s->buf[start + i] != (uint8_t)text[i])
            return false;
    }
    return true;
}

/* Is the member at the current depth the one path names ("a" or "a.b")? */
static bool path_matches(const json_scanner_t *s, const char *path)
{
    const char *dot = strchr(path, '.');

    if (s->depth == 1 && s->open[0] == '{')
        return !dot && bytes_equal(s, s->key_start[1], s->key_len[1], path, strlen(path));
    if (s->depth == 2 && s->open[0] == '{' && s->open[1] == '{' && dot)
        return bytes_equal(s, s->key_start[1], s->key_len[1], path, (size_t)(dot - path)) &&
               bytes_equal(s, s->key_start[2], s->key_len[2], dot + 1, strlen(dot + 1));
    return false;
}

static void note_key(json_scanner_t *s)
{
    for (unsigned i = 0; i < s->n_members; i++) {
        if (path_matches(s, s->members[i].path))
            s->members[i].present = true;
    }
}

static void note_string_value(json_scanner_t *s, int start, int len)
{
    if (!s->member_value)
        return;
    for (unsigned i = 0; i < s->n_members; i++) {
        if (path_matches(s, s->members[i].path)) {
            s->members[i].string = (const char *)wmem_strndup(s->scope, (const char *)&s->buf[start], (size_t)len);
        }
    }
}

/* A string at pos (its opening quote); on success pos is after it and
 * [*start, *start + *len) its contents. */
static vsock_json_status_t scan_string(json_scanner_t *s, int *start, int *len)
{
    int i = s->pos + 1;

    while (i < s->len) {
        const uint8_t c = s->buf[i];

        if (c == '"') {
            *start = s->pos + 1;
            *len = i - *start;
            s->pos = i + 1;
            return VSOCK_JSON_COMPLETE;
        }
        if (c < 0x20) {
            s->pos = i;
            return VSOCK_JSON_INVALID;
        }
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= s->len)
            return VSOCK_JSON_INCOMPLETE;
        if (strchr("\"\\/bfnrt", s->buf[i + 1]) && s->buf[i + 1] != '\0') {
            i += 2;
        } else if (s->buf[i + 1] == 'u') {
            for (int k = 0; k < 4; k++) {
                if (i + 2 + k >= s->len)
                    return VSOCK_JSON_INCOMPLETE;
                if (!is_hex(s->buf[i + 2 + k])) {
                    s->pos = i + 2 + k;
                    return VSOCK_JSON_INVALID;
                }
            }
            i += 6;
        } else {
            s->pos = i + 1;
            return VSOCK_JSON_INVALID;
        }
    }
    return VSOCK_JSON_INCOMPLETE;
}

/* Skips digits; false if there were none. */
static bool skip_digits(const json_scanner_t *s, int *i)
{
    const int first = *i;

    while (*i < s->len && is_digit(s->buf[*i]))
        (*i)++;
    return *i > first;
}

/* Where the number stops matching; false if it is not a number. */
static bool number_end(const json_scanner_t *s, int *i)
{
    if (s->buf[*i] == '-')
        (*i)++;
    if (*i < s->len && s->buf[*i] == '0')
        (*i)++;
    else if (!skip_digits(s, i))
        return false;
    if (*i < s->len && s->buf[*i] == '.') {
        (*i)++;
        if (!skip_digits(s, i))
            return false;
    }
    if (*i < s->len && (s->buf[*i] == 'e' || s->buf[*i] == 'E')) {
        (*i)++;
        if (*i < s->len && (s->buf[*i] == '+' || s->buf[*i] == '-'))
            (*i)++;
        if (!skip_digits(s, i))
            return false;
    }
    return true;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static vsock_json_status_t scan_number(json_scanner_t *s)
{
    int i = s->pos;
    const bool ok = number_end(s, &i);

    /* A number inside an object always has something after it. */
    if (i >= s->len)
        return VSOCK_JSON_INCOMPLETE;
    s->pos = i;
    return ok ? VSOCK_JSON_COMPLETE : VSOCK_JSON_INVALID;
}

static vsock_json_status_t scan_literal(json_scanner_t *s, const char *word)
{
    for (size_t k = 0; word[k]; k++) {
        const int i = s->pos + (int)k;

        if (i >= s->len)
            return VSOCK_JSON_INCOMPLETE;
        if (s->buf[i] != (uint8_t)word[k]) {
            s->pos = i;
            return VSOCK_JSON_INVALID;
        }
    }
    s->pos += (int)strlen(word);
    return VSOCK_JSON_COMPLETE;
}

/* A scalar at pos: string, number, true, false or null. */
static vsock_json_status_t scan_scalar(json_scanner_t *s)
{
    const uint8_t c = s->buf[s->pos];
    int start, len;
    vsock_json_status_t status;

    switch (c) {
    case '"':
        status = scan_string(s, &start, &len);
        if (status == VSOCK_JSON_COMPLETE)
            note_string_value(s, start, len);
        return status;
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (c == '-' || is_digit(c))
            return scan_number(s);
        return VSOCK_JSON_INVALID;
    }
}

static bool push(json_scanner_t *s, uint8_t bracket)
{
    if (s->depth >= JSON_MAX_DEPTH)
        return false;
    s->open[s->depth++] = bracket;
    s->pos++;
    return true;
}

/* One step of the grammar at pos (not whitespace). */
static vsock_json_status_t step(json_scanner_t *s, enum json_expect *expect, bool *value_done)
{
    const uint8_t c = s->buf[s->pos];
    int start, len;
    vsock_json_status_t status;

    *value_done = false;
    switch (*expect) {
    case EXPECT_VALUE:
    case EXPECT_VALUE_OR_END:
        if (c == ']' && *expect == EXPECT_VALUE_OR_END) {
            s->depth--;
            s->pos++;
            *value_done = true;
            return VSOCK_JSON_COMPLETE;
        }
        if (c == '{' || c == '[') {
            if (!push(s, c))
                return VSOCK_JSON_INVALID;
            s->member_value = false;
            *expect = c == '{' ? EXPECT_KEY_OR_END : EXPECT_VALUE_OR_END;
            return VSOCK_JSON_COMPLETE;
        }
        status = scan_scalar(s);
        *value_done = status == VSOCK_JSON_COMPLETE;
        return status;
    case EXPECT_KEY:
    case EXPECT_KEY_OR_END:
        if (c == '}' && *expect == EXPECT_KEY_OR_END) {
            s->depth--;
            s->pos++;
            *value_done = true;
            return VSOCK_JSON_COMPLETE;
        }
        if (c != '"')
            return VSOCK_JSON_INVALID;
        status = scan_string(s, &start, &len);
        if (status != VSOCK_JSON_COMPLETE)
            return status;
        if (s->depth <= JSON_KEY_LEVELS) {
            s->key_start[s->depth] = start;
            s->key_len[s->depth] = len;
            note_key(s);
        }
        *expect = EXPECT_COLON;
        return VSOCK_JSON_COMPLETE;
    case EXPECT_COLON:
        if (c != ':')
            return VSOCK_JSON_INVALID;
        s->pos++;
        s->member_value = true;
        *expect = EXPECT_VALUE;
        return VSOCK_JSON_COMPLETE;
    case EXPECT_COMMA_OR_END:
    default:
        if (c == ',') {
            s->pos++;
            s->member_value = false;
            *expect = s->open[s->depth - 1] == '{' ? EXPECT_KEY : EXPECT_VALUE;
            return VSOCK_JSON_COMPLETE;
        }
        if ((c == '}' && s->open[s->depth - 1] == '{') || (c == ']' && s->open[s->depth - 1] == '[')) {
            s->depth--;
            s->pos++;
            *value_done = true;
            return VSOCK_JSON_COMPLETE;
        }
        return VSOCK_JSON_INVALID;
    }
}

vsock_json_status_t vsock_json_scan(const uint8_t *buf, int start, int len, wmem_allocator_t *scope,
                                    vsock_json_member_t *members, unsigned n_members, int *end)
{
    json_scanner_t s;
    enum json_expect expect = EXPECT_KEY_OR_END;

    memset(&s, 0, sizeof s);
    s.buf = buf;
    s.len = len;
    s.pos = start;
    s.scope = scope;
    s.members = members;
    s.n_members = n_members;
    for (unsigned i = 0; i < n_members; i++) {
        members[i].present = false;
        members[i].string = NULL;
    }

    while (s.pos < len && is_ws(buf[s.pos]))
        s.pos++;
    if (s.pos >= len)
        return VSOCK_JSON_INCOMPLETE;
    /* The messages are objects: anything else is not one. */
    if (buf[s.pos] != '{') {
        *end = s.pos;
        return VSOCK_JSON_INVALID;
    }
    push(&s, '{');

    while (s.depth > 0) {
        bool value_done;
        vsock_json_status_t status;

        while (s.pos < len && is_ws(buf[s.pos]))
            s.pos++;
        if (s.pos >= len)
            return VSOCK_JSON_INCOMPLETE;
        status = step(&s, &expect, &value_done);
        if (status != VSOCK_JSON_COMPLETE) {
            *end = s.pos;
            return status;
        }
        if (value_done && s.depth > 0)
            expect = EXPECT_COMMA_OR_END;
    }
    *end = s.pos;
    return VSOCK_JSON_COMPLETE;
}

/* Apart, so that nothing live across the setjmp of TRY can be clobbered. */
static void call_json_guarded(dissector_handle_t json_handle, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    TRY {
        call_dissector_only(json_handle, tvb, pinfo, tree, NULL);
    }
    CATCH_NONFATAL_ERRORS {
        show_exception(tvb, pinfo, tree, EXCEPT_CODE, GET_MESSAGE);
    }
    ENDTRY;
}

void vsock_json_show(dissector_handle_t json_handle, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    bool writable;

    if (!json_handle)
        return;
    writable = col_get_writable(pinfo->cinfo, -1);
    col_set_writable(pinfo->cinfo, -1, false);
    call_json_guarded(json_handle, tvb, pinfo, tree);
    col_set_writable(pinfo->cinfo, -1, writable);
}
