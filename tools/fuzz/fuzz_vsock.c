/* fuzz_vsock.c
 * libFuzzer harness for the vsock dissector, linked against the system's
 * libwireshark (Debian's libwireshark-dev is enough: every call below is
 * exported). The plugin's sources are compiled into this program and
 * registered with proto_register_plugin() before epan_init(), so the vsock
 * dissector takes over WTAP_ENCAP_VSOCK exactly as the loaded plugin does.
 *
 * Two modes (tools/fuzz/README.md):
 *   default             one input = one frame (LINKTYPE_VSOCK), one dissection
 *                       pass with a tree, columns and every label formatted
 *                       (an odd-sized input: with the hidden tree of a
 *                       display filter instead).
 *   VSOCK_FUZZ_MULTI=1  one input = up to 64 frames, each prefixed by a 16-bit
 *                       little-endian length, dissected like `tshark -2 -V`
 *                       (a first pass without tree, or for an odd-sized input
 *                       with a display filter's hidden tree, then a second
 *                       with a shown one):
 *                       connection analysis and reassembly within one input.
 *
 * As in Wireshark's fuzzshark, the epan session lives across inputs (frame
 * numbers keep growing), so connection state can carry over from one input to
 * the next. A fresh session per input would make every input stand alone, but
 * Debian's libwireshark 4.0 keeps about 10 MB per epan_new()/epan_free() cycle
 * (dissector init routines) and an init costs ~60 ms: the session is renewed
 * only every VSOCK_FUZZ_RESET inputs (default 200000) to bound the file-scope
 * memory (conversations, reassembly) that accumulates.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <stdlib.h>
#include <string.h>

#include <epan/epan.h>
#include <epan/epan_dissect.h>
#include <epan/column.h>
#include <epan/column-info.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto.h>
#include <epan/timestamp.h>
#include <epan/frame_data.h>
#include <epan/dfilter/dfilter.h>
#include <wiretap/wtap.h>
#include <wsutil/filesystem.h>
#include <wsutil/privileges.h>
#include <wsutil/wslog.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void plugin_register(void); /* plugin.c */

#define MAX_FRAMES 64

static column_info *fuzz_cinfo;
static epan_t *long_session;
static gboolean multi_mode;
static guint32 frame_counter;
static guint32 inputs_in_session;
static guint32 reset_every = 200000;

/* The frames of the current input, for the timestamps epan asks for. */
static frame_data *current_frames;
static guint32 current_base;   /* frame number before the first of current_frames */
static guint32 current_count;

static const nstime_t *get_frame_ts(struct packet_provider_data *prov _U_, guint32 frame_num)
{
    static const nstime_t any_ts = { 1700000000, 0 };

    if (current_frames && frame_num > current_base && frame_num <= current_base + current_count)
        return &current_frames[frame_num - current_base - 1].abs_ts;
    return &any_ts; /* an earlier input's frame (one-frame mode) */
}

static epan_t *new_session(void)
{
    static const struct packet_provider_funcs funcs = { get_frame_ts, NULL, NULL, NULL };
    return epan_new(NULL, &funcs);
}

/* Format every label, as printing the tree (-V) does: custom formatters run here. */
static void fill_labels(proto_node *node, gpointer data _U_)
{
    field_info *fi = PNODE_FINFO(node);
    gchar label[ITEM_LABEL_LENGTH];

    if (fi) {
        if (fi->rep)
            (void)strlen(fi->rep->representation);
        else
            proto_item_fill_label(fi, label);
    }
    proto_tree_children_foreach(node, fill_labels, NULL);
}

/* How a frame is dissected: without a tree (a summary pass), with a tree
 * that is not shown and holds what a display filter asks for (tshark -Y,
 * -T fields: the plugin then leaves out the fields nobody references), or
 * with a visible tree whose labels are all formatted (-V). */
enum tree_kind { TREE_NONE, TREE_FILTER, TREE_SHOWN };

/* Fields of every part of the plugin and its expert infos, for TREE_FILTER. */
static dfilter_t *fuzz_dfcode;

static void dissect_one(epan_t *session, frame_data *fd, wtap_rec *rec, const guint8 *bytes,
                        guint32 len, enum tree_kind kind)
{
    epan_dissect_t *edt = epan_dissect_new(session, kind != TREE_NONE, kind == TREE_SHOWN);
    tvbuff_t *tvb = tvb_new_real_data(bytes, len, len);

    if (kind == TREE_FILTER)
        epan_dissect_prime_with_dfilter(edt, fuzz_dfcode);
    epan_dissect_run(edt, WTAP_FILE_TYPE_SUBTYPE_UNKNOWN, rec, tvb, fd, kind != TREE_NONE ? fuzz_cinfo : NULL);
    if (kind == TREE_FILTER)
        (void)dfilter_apply_edt(fuzz_dfcode, edt);
    if (kind == TREE_SHOWN) {
        epan_dissect_fill_in_columns(edt, FALSE, TRUE);
        if (edt->tree)
            proto_tree_children_foreach(edt->tree, fill_labels, NULL);
    }
    epan_dissect_free(edt);
}

static void init_rec(wtap_rec *rec, guint32 len, guint32 n)
{
    wtap_rec_init(rec);
    rec->rec_type = REC_TYPE_PACKET;
    rec->presence_flags = WTAP_HAS_TS | WTAP_HAS_CAP_LEN;
    rec->ts.secs = 1700000000 + n;
    rec->ts.nsecs = 0;
    rec->rec_header.packet_header.caplen = len;
    rec->rec_header.packet_header.len = len;
    rec->rec_header.packet_header.pkt_encap = WTAP_ENCAP_VSOCK;
}

/* Wireshark reports a dissector bug as a log warning "Dissector bug, protocol
 * NAME, in packet N: ..." and goes on; ours (vsock, ttrpc) abort here. */
static void log_writer(const char *domain, enum ws_log_level level, struct timespec timestamp,
                       const char *file, long line, const char *func,
                       const char *user_format, va_list user_ap, void *user_data _U_)
{
    char *msg;
    const char *bug;
    va_list ap;

    va_copy(ap, user_ap);
    msg = g_strdup_vprintf(user_format, ap);
    va_end(ap);
    bug = strstr(msg, "Dissector bug, protocol ");
    fprintf(stderr, "[%s] %s\n", domain ? domain : "", msg);
    if (bug) {
        bug += strlen("Dissector bug, protocol ");
        if (g_ascii_strncasecmp(bug, "vsock,", 6) == 0 || g_ascii_strncasecmp(bug, "ttrpc,", 6) == 0)
            abort();
    }
    g_free(msg);
    (void)level; (void)timestamp; (void)file; (void)line; (void)func;
}

int LLVMFuzzerInitialize(int *argc _U_, char ***argv)
{
    char *err;
    e_prefs *prefs_p;

    /* Every wmem and GLib allocation a malloc of its own, so ASan sees it. */
    g_setenv("WIRESHARK_DEBUG_WMEM_OVERRIDE", "simple", 0);
    g_setenv("G_SLICE", "always-malloc", 0);
    /* A "Dissector bug" (DISSECTOR_ASSERT, ...) of ours is a crash for libFuzzer
     * (log_writer below); WIRESHARK_ABORT_ON_DISSECTOR_BUG is not set, so that
     * one in Wireshark's own dissectors, reached through the payload hand-off,
     * is printed and fuzzing goes on. */
    g_setenv("WIRESHARK_ABORT_ON_TOO_MANY_ITEMS", "1", 0);
    g_setenv("XDG_CACHE_HOME", "/nonexistent", 0);
    g_setenv("XDG_CONFIG_HOME", "/nonexistent", 0);
    g_setenv("XDG_DATA_HOME", "/nonexistent", 0);

    ws_log_init_with_writer("fuzz_vsock", log_writer, NULL);
    init_process_policies();
    err = configuration_init((*argv)[0], NULL);
    g_free(err);
    timestamp_set_type(TS_RELATIVE);
    timestamp_set_precision(TS_PREC_AUTO);
    timestamp_set_seconds_type(TS_SECONDS_DEFAULT);

    wtap_init(FALSE);
    plugin_register();               /* before epan_init: it registers, then hands off */
    if (!epan_init(NULL, NULL, FALSE)) {
        fprintf(stderr, "fuzz_vsock: epan_init failed\n");
        exit(1);
    }
    prefs_p = epan_load_settings();
    fuzz_cinfo = g_new0(column_info, 1);   /* build_column_format_array() calls col_setup() */
    build_column_format_array(fuzz_cinfo, prefs_p->num_cols, TRUE);

    if (!dissector_get_uint_handle(find_dissector_table("wtap_encap"), WTAP_ENCAP_VSOCK)) {
        fprintf(stderr, "fuzz_vsock: no dissector for WTAP_ENCAP_VSOCK\n");
        exit(1);
    }
    if (!dfilter_compile("vsock.len > 0 || vsock.stream || vsock.state || vsock.analysis.bytes_in_flight"
                         " || vsock.response_in || vsock.seqpacket.msg_len || vsock.reassembled_in || _ws.expert",
                         &fuzz_dfcode, &err)) {
        fprintf(stderr, "fuzz_vsock: display filter: %s\n", err);
        exit(1);
    }
    multi_mode = getenv("VSOCK_FUZZ_MULTI") != NULL && strcmp(getenv("VSOCK_FUZZ_MULTI"), "0") != 0;
    if (getenv("VSOCK_FUZZ_RESET"))
        reset_every = (guint32)strtoul(getenv("VSOCK_FUZZ_RESET"), NULL, 10);
    long_session = new_session();
    fprintf(stderr, "fuzz_vsock: %s mode\n", multi_mode ? "multi-frame (VSOCK_FUZZ_MULTI)" : "one frame per input");
    return 0;
}

static int one_frame(const uint8_t *data, size_t size)
{
    wtap_rec rec;
    frame_data fd;
    guint32 len = (guint32)MIN(size, 262144);

    init_rec(&rec, len, ++frame_counter);
    frame_data_init(&fd, frame_counter, &rec, 0, 0);
    current_frames = &fd;
    current_base = frame_counter - 1;
    current_count = 1;
    /* An odd-sized input as a filter pass sees it, an even one as -V does. */
    dissect_one(long_session, &fd, &rec, data, len, size % 2 ? TREE_FILTER : TREE_SHOWN);
    current_frames = NULL;
    frame_data_destroy(&fd);
    wtap_rec_cleanup(&rec);
    return 0;
}

static int many_frames(const uint8_t *data, size_t size)
{
    const guint8 *bytes[MAX_FRAMES];
    guint32 lens[MAX_FRAMES];
    frame_data fds[MAX_FRAMES];
    wtap_rec recs[MAX_FRAMES];
    guint32 n = 0, i;
    size_t off = 0;
    epan_t *session;
    int pass;

    while (off + 2 <= size && n < MAX_FRAMES) {
        guint32 len = (guint32)data[off] | ((guint32)data[off + 1] << 8);
        off += 2;
        if (len > size - off)
            len = (guint32)(size - off);
        bytes[n] = data + off;
        lens[n] = len;
        n++;
        off += len;
    }
    if (n == 0)
        return 0;

    session = long_session;
    for (i = 0; i < n; i++) {
        init_rec(&recs[i], lens[i], frame_counter + i);
        frame_data_init(&fds[i], frame_counter + i + 1, &recs[i], 0, 0);
    }
    current_frames = fds;
    current_base = frame_counter;
    current_count = n;
    frame_counter += n;
    /* tshark -2: a first pass without a tree (an odd-sized input: with a
     * filter's tree, as -2 -R has), then every frame again with a shown one. */
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < n; i++)
            dissect_one(session, &fds[i], &recs[i], bytes[i], lens[i],
                        pass == 1 ? TREE_SHOWN : size % 2 ? TREE_FILTER : TREE_NONE);
    current_frames = NULL;
    current_count = 0;
    for (i = 0; i < n; i++) {
        frame_data_destroy(&fds[i]);
        wtap_rec_cleanup(&recs[i]);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (reset_every && ++inputs_in_session > reset_every) {
        epan_free(long_session);
        long_session = new_session();
        inputs_in_session = 1;
        frame_counter = 0;
    }
    return multi_mode ? many_frames(data, size) : one_frame(data, size);
}
