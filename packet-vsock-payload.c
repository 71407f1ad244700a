/* packet-vsock-payload.c
 * Hands the payload of RW packets to subdissectors: ports chosen with
 * Decode As, the "vsock" heuristic list, the "vsock.port" table, then data.
 *
 * Heuristics recognise a protocol by the first bytes of a stream (a TLS
 * ClientHello, an HTTP request line, an SSH banner, the HTTP/2 preface). When
 * they all refused the first payload of a direction whose start was captured,
 * that direction is not offered to them again: trying every heuristic on
 * every packet of a connection nobody recognises was a fifth of a read.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <wireshark.h>

#include <epan/packet.h>
#include <epan/decode_as.h>
#include <epan/prefs.h>
#include <epan/proto_data.h>
#include <wsutil/utf8_entities.h>

#include "vsock-compat.h"
#include "packet-vsock.h"
#include "packet-vsock-conversation.h"
#include "packet-vsock-payload.h"

/* The ports the Decode As dialog offers: per-packet data (pinfo->pool), as
 * deeper layers may change pinfo->srcport and pinfo->destport. */
#define DECODE_AS_PORTS_KEY 0
typedef struct vsock_decode_as_ports {
    uint32_t src;
    uint32_t dst;
} vsock_decode_as_ports_t;

/* What the hand-off remembers of a connection (kept with it). Frame numbers,
 * not flags: a later pass must decide as the first did, packet by packet. */
typedef struct vsock_payload_conn {
    /* Per direction: no heuristic recognised the direction's first payload,
     * in this frame; later payloads are not offered to them (0: never). */
    uint32_t heuristics_refused_in[2];
    uint32_t http2_from_frame;       /* HTTP/2's heuristic accepted this frame (0: never) */
    dissector_handle_t connection_dissector; /* vsock_set_connection_dissector() ... */
    uint32_t connection_dissector_from;      /* ... in this frame */
} vsock_payload_conn_t;

static int proto_vsock = -1;
static int conn_slot = -1;
static heur_dissector_list_t heur_subdissector_list;
static dissector_table_t port_subdissector_table;
static dissector_handle_t data_handle;

/* Handles whose port entries come before the heuristics (few: a fixed array). */
#define MAX_PREFERRED_PORT_DISSECTORS 4
static dissector_handle_t preferred_port_dissectors[MAX_PREFERRED_PORT_DISSECTORS];

static vsock_pref_bool try_heuristic_first = true;
static vsock_pref_bool heuristics_every_packet = false;

/* Decode As: the dialog offers this packet's source, destination or both ports. */
static vsock_decode_as_ports_t packet_ports(packet_info *pinfo)
{
    const vsock_decode_as_ports_t *ports =
        (const vsock_decode_as_ports_t *)p_get_proto_data(pinfo->pool, pinfo, proto_vsock, DECODE_AS_PORTS_KEY);
    vsock_decode_as_ports_t none = { 0, 0 };

    return ports ? *ports : none;
}

static void vsock_src_prompt(packet_info *pinfo, char *result)
{
    snprintf(result, MAX_DECODE_AS_PROMPT_LEN, "source (%u)", packet_ports(pinfo).src);
}

static void vsock_dst_prompt(packet_info *pinfo, char *result)
{
    snprintf(result, MAX_DECODE_AS_PROMPT_LEN, "destination (%u)", packet_ports(pinfo).dst);
}

static void vsock_both_prompt(packet_info *pinfo, char *result)
{
    vsock_decode_as_ports_t ports = packet_ports(pinfo);

    snprintf(result, MAX_DECODE_AS_PROMPT_LEN, "both (%u" UTF8_LEFT_RIGHT_ARROW "%u)", ports.src, ports.dst);
}

static void *vsock_src_value(packet_info *pinfo)
{
    return GUINT_TO_POINTER(packet_ports(pinfo).src);
}

static void *vsock_dst_value(packet_info *pinfo)
{
    return GUINT_TO_POINTER(packet_ports(pinfo).dst);
}

/* A port the user changed with Decode As wins over every guess. */
static bool try_changed_port(uint32_t port, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    return dissector_is_uint_changed(port_subdissector_table, port) &&
           dissector_try_uint_with_data(port_subdissector_table, port, tvb, pinfo, tree, true, NULL) != 0;
}

void vsock_prefer_port_dissector(dissector_handle_t handle)
{
    for (size_t i = 0; i < array_length(preferred_port_dissectors); i++) {
        if (!preferred_port_dissectors[i] || preferred_port_dissectors[i] == handle) {
            preferred_port_dissectors[i] = handle;
            return;
        }
    }
}

/* A port whose entry wraps what a heuristic would otherwise take first. */
static bool try_preferred_port(uint32_t port, tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree)
{
    dissector_handle_t handle;

    if (!preferred_port_dissectors[0])
        return false;
    handle = dissector_get_uint_handle(port_subdissector_table, port);
    if (!handle)
        return false;
    for (size_t i = 0; i < array_length(preferred_port_dissectors); i++) {
        if (preferred_port_dissectors[i] == handle)
            return dissector_try_uint_with_data(port_subdissector_table, port, tvb, pinfo, tree, true, NULL) != 0;
    }
    return false;
}

/* The hand-off's state of a connection; with create, made if missing. */
static vsock_payload_conn_t *payload_conn(const vsock_conv_packet_t *cp, bool create)
{
    vsock_payload_conn_t *conn;

    if (!cp)
        return NULL;
    conn = (vsock_payload_conn_t *)vsock_conversation_get_data(cp->conv, conn_slot);
    if (!conn && create) {
        conn = wmem_new0(wmem_file_scope(), vsock_payload_conn_t);
        vsock_conversation_set_data(cp->conv, conn_slot, conn);
    }
    return conn;
}

/* Whether the heuristics are offered this payload: not after they all
 * refused the first payload of its direction (in an earlier frame). */
static bool heuristics_wanted(packet_info *pinfo, const vsock_conv_packet_t *cp)
{
    const vsock_payload_conn_t *conn = payload_conn(cp, false);
    uint32_t refused_in;

    if (!conn || heuristics_every_packet)
        return true;
    refused_in = conn->heuristics_refused_in[cp->direction];
    return !(refused_in && pinfo->num > refused_in);
}

static bool try_heuristics(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, const vsock_conv_packet_t *cp)
{
    heur_dtbl_entry_t *hdtbl_entry;

    if (!heuristics_wanted(pinfo, cp))
        return false;
    if (dissector_try_heuristic(heur_subdissector_list, tvb, pinfo, tree, &hdtbl_entry, NULL))
        return true;
    /* Refused at the very start of the direction: give up on it. */
    if (cp && !PINFO_FD_VISITED(pinfo) && (cp->flags & VSOCK_CONV_P_STREAM_START)) {
        vsock_payload_conn_t *conn = payload_conn(cp, true);

        if (!conn->heuristics_refused_in[cp->direction])
            conn->heuristics_refused_in[cp->direction] = pinfo->num;
    }
    return false;
}

/* The lower port is more likely the service's, as with UDP. */
static bool try_ports(uint32_t low_port, uint32_t high_port, tvbuff_t *tvb, packet_info *pinfo,
                          proto_tree *tree)
{
    return dissector_try_uint_with_data(port_subdissector_table, low_port, tvb, pinfo, tree, true, NULL) != 0 ||
           dissector_try_uint_with_data(port_subdissector_table, high_port, tvb, pinfo, tree, true, NULL) != 0;
}

void vsock_set_connection_dissector(packet_info *pinfo, dissector_handle_t handle)
{
    vsock_payload_conn_t *conn;

    if (PINFO_FD_VISITED(pinfo) || (conn = payload_conn(vsock_conversation_packet(pinfo), true)) == NULL)
        return;
    conn->connection_dissector = handle;
    conn->connection_dissector_from = pinfo->num;
}

/* A dissector that took the connection (vsock_set_connection_dissector) gets
 * its later payloads first, as a conversation dissector does over TCP. */
static bool try_connection_dissector(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree,
                                     const vsock_conv_packet_t *cp)
{
    const vsock_payload_conn_t *conn = payload_conn(cp, false);

    return conn && conn->connection_dissector && pinfo->num > conn->connection_dissector_from &&
           call_dissector_only(conn->connection_dissector, tvb, pinfo, tree, NULL) != 0;
}

void vsock_payload_dissect(tvbuff_t *payload_tvb, packet_info *pinfo, proto_tree *tree,
                           const vsock_packet_info_t *packet)
{
    const uint32_t low_port = MIN(packet->src_port, packet->dst_port);
    const uint32_t high_port = MAX(packet->src_port, packet->dst_port);
    vsock_decode_as_ports_t *ports = wmem_new(pinfo->pool, vsock_decode_as_ports_t);
    bool ports_claimed;

    ports->src = packet->src_port;
    ports->dst = packet->dst_port;
    p_add_proto_data(pinfo->pool, pinfo, proto_vsock, DECODE_AS_PORTS_KEY, ports);

    if (try_connection_dissector(payload_tvb, pinfo, tree, packet->conv))
        return;
    /* Most connections' ports have no dissector (none, or Decode As "none"):
     * two lookups tell, where the port steps below make six. */
    ports_claimed = dissector_get_uint_handle(port_subdissector_table, low_port) != NULL ||
                    dissector_get_uint_handle(port_subdissector_table, high_port) != NULL;
    if (ports_claimed && (try_changed_port(low_port, payload_tvb, pinfo, tree) ||
                          try_changed_port(high_port, payload_tvb, pinfo, tree)))
        return;
    if (ports_claimed && (try_preferred_port(low_port, payload_tvb, pinfo, tree) ||
                          try_preferred_port(high_port, payload_tvb, pinfo, tree)))
        return;
    if (try_heuristic_first && try_heuristics(payload_tvb, pinfo, tree, packet->conv))
        return;
    if (ports_claimed && try_ports(low_port, high_port, payload_tvb, pinfo, tree))
        return;
    if (!try_heuristic_first && try_heuristics(payload_tvb, pinfo, tree, packet->conv))
        return;
    call_dissector(data_handle, payload_tvb, pinfo, tree);
}

void vsock_payload_register(int proto, module_t *prefs)
{
    static build_valid_func src_values[] = { vsock_src_value };
    static build_valid_func dst_values[] = { vsock_dst_value };
    static build_valid_func both_values[] = { vsock_src_value, vsock_dst_value };
    static decode_as_value_t decode_as_values[] = {
        { vsock_src_prompt, 1, src_values },
        { vsock_dst_prompt, 1, dst_values },
        { vsock_both_prompt, 2, both_values },
    };
    static decode_as_t decode_as = {
        "vsock", "vsock.port", 3, 2, decode_as_values, "vsock", "port(s) as",
        decode_as_default_populate_list, decode_as_default_reset, decode_as_default_change, NULL
    };

    proto_vsock = proto;
    conn_slot = vsock_conversation_new_data_slot();

    heur_subdissector_list = register_heur_dissector_list("vsock", proto);
    port_subdissector_table = register_dissector_table("vsock.port", "vsock port", proto,
                                                       FT_UINT32, BASE_DEC);
    register_decode_as(&decode_as);

    prefs_register_bool_preference(prefs, "try_heuristic_first",
                                   "Try heuristic sub-dissectors first",
                                   "Offer payloads to the heuristic sub-dissectors before the port table "
                                   "(ports chosen with Decode As always come first). "
                                   "Turn this off to try the port table first.",
                                   &try_heuristic_first);
    prefs_register_bool_preference(prefs, "heuristics_every_packet",
                                   "Offer every payload to the heuristic sub-dissectors",
                                   "By default, when no heuristic sub-dissector recognised the first payload "
                                   "of a direction of a connection (its start captured), the rest of that "
                                   "direction is not offered to them: heuristics recognise a protocol by the "
                                   "first bytes of a stream, and this saves trying them on every packet. "
                                   "Turn this on for a protocol that only becomes recognisable later.",
                                   &heuristics_every_packet);
}

/* Every protocol that can be chosen for a TCP port can be chosen for a vsock port. */
static void offer_for_decode_as(const char *table_name _U_, void *handle, void *user_data _U_)
{
    dissector_add_for_decode_as("vsock.port", (dissector_handle_t)handle);
}

/* Wireshark's HTTP/2 heuristic finds or creates a conversation for every
 * payload it is offered, before it looks for the connection preface: that
 * was a conversation per vsock connection and 4 % of a read. It accepts a
 * payload that starts with the preface, or any payload of a connection where
 * it accepted one (its session); asked only then, it answers the same. */
static heur_dissector_t http2_heuristic;

static vsock_cb_bool http2_heuristic_when_possible(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const vsock_conv_packet_t *cp = vsock_conversation_packet(pinfo);
    const vsock_payload_conn_t *known = payload_conn(cp, false);
    const uint32_t from_frame = known ? known->http2_from_frame : 0;
    vsock_payload_conn_t *conn;

    if (!cp) /* no connection: no memory of it */
        return http2_heuristic(tvb, pinfo, tree, data);
    /* Frame numbers, not a flag: a second pass must not ask it earlier. */
    if (!(from_frame && pinfo->num >= from_frame) &&
        tvb_memeql(tvb, 0, (const uint8_t *)preface, sizeof preface - 1) != 0)
        return false;
    if (!http2_heuristic(tvb, pinfo, tree, data))
        return false;
    conn = payload_conn(cp, true);
    if (!conn->http2_from_frame)
        conn->http2_from_frame = pinfo->num;
    return true;
}

/* Tunnels that open with an HTTP request (vsock_payload_not_http). */
#define MAX_HTTP_OPENINGS 4
static vsock_http_opening_t http_openings[MAX_HTTP_OPENINGS];
static unsigned http_opening_count;
static heur_dissector_t http_heuristic;

void vsock_payload_not_http(vsock_http_opening_t check)
{
    if (http_opening_count < MAX_HTTP_OPENINGS)
        http_openings[http_opening_count++] = check;
}

static vsock_cb_bool http_heuristic_unless_tunnel(tvbuff_t *tvb, packet_info *pinfo, proto_tree *tree, void *data)
{
    for (unsigned i = 0; i < http_opening_count; i++) {
        if (http_openings[i](tvb))
            return false;
    }
    return http_heuristic(tvb, pinfo, tree, data);
}

/* Wireshark's own TCP heuristics serve vsock as well: a payload that clearly is
 * TLS or HTTP is found on any port, before any port entry is tried. With a
 * filter, vsock's list gets the filter instead and *original the heuristic. */
static void adopt_tcp_heuristic(const char *tcp_short_name, const char *vsock_short_name,
                                const char *display_name, heur_dissector_t filter,
                                heur_dissector_t *original)
{
    heur_dtbl_entry_t *entry = find_heur_dissector_by_unique_short_name(tcp_short_name);
    heur_dissector_t dissector;

    if (!entry || find_heur_dissector_by_unique_short_name(vsock_short_name))
        return;
    dissector = entry->dissector;
    if (filter) {
        *original = dissector;
        dissector = filter;
    }
    heur_dissector_add("vsock", dissector, display_name, vsock_short_name,
                       proto_get_id(entry->protocol), HEURISTIC_ENABLE);
}

/* The services the reference lists on well-known vsock ports; each entry is a
 * preference of its protocol and can be changed with Decode As. */
static void add_well_known_port(const char *dissector_name, const char *ports)
{
    dissector_handle_t handle = find_dissector(dissector_name);

    if (handle)
        dissector_add_uint_range_with_preference("vsock.port", ports, handle);
}

void vsock_payload_handoff(void)
{
    data_handle = find_dissector("data");
    /* Plugin handoffs run after the built-in ones, so tcp.port is complete here. */
    dissector_table_foreach_handle("tcp.port", offer_for_decode_as, NULL);

    adopt_tcp_heuristic("tls_tcp", "tls_vsock", "TLS over vsock", NULL, NULL);
    adopt_tcp_heuristic("http_tcp", "http_vsock", "HTTP over vsock", http_heuristic_unless_tunnel,
                        &http_heuristic);
    adopt_tcp_heuristic("http2_tcp", "http2_vsock", "HTTP/2 over vsock",
                        http2_heuristic_when_possible, &http2_heuristic);
    adopt_tcp_heuristic("ssh_tcp", "ssh_vsock", "SSH over vsock", NULL, NULL);

    add_well_known_port("ssh", "22");               /* systemd (v256+) VMs */
    add_well_known_port("http2", "8888-8890,9001"); /* gRPC of ChromeOS VM tools */
}
