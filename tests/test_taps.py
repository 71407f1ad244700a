"""Follow vsock Stream, the conversation and endpoint tables, the conversation
filter's expression and the vsock,tree statistics (vsock-taps.c)."""

import hashlib
import os
import re

import pytest

from vsocktest import CAPTURES, REAL_CAPTURES as REAL, check_direction, ground_truth, relative

GOOD = "synthetic/good.pcap"
SEPARATOR = "=" * 67

def follow_blocks(text):
    """The -z follow output blocks, by their filter: {filter: [lines]}."""
    blocks = {}
    for chunk in text.split(SEPARATOR + "\n"):
        lines = chunk.splitlines()
        if len(lines) >= 4 and lines[0].startswith("Follow: ") and lines[1].startswith("Filter: "):
            blocks[lines[1][len("Filter: "):]] = lines
    return blocks


def parse_raw_follow(lines):
    """Node addresses and the bytes each node sent, from a follow,vsock,raw block."""
    nodes = [lines[2].split(": ", 1)[1], lines[3].split(": ", 1)[1]]
    sent = [bytearray(), bytearray()]
    for line in lines[4:]:
        if line.startswith("\t"):
            sent[1] += bytes.fromhex(line[1:])
        elif line:
            sent[0] += bytes.fromhex(line)
    return nodes, [bytes(b) for b in sent]


def request_streams(tshark, capture):
    """The stream each REQUEST opened: {((src cid, port), (dst cid, port)): [stream, ...]}."""
    rows = tshark.fields(capture, ["vsock.stream", "vsock.src_cid", "vsock.src_port",
                                   "vsock.dst_cid", "vsock.dst_port"], "vsock.virtio.op == 1")
    streams = {}
    for stream, src_cid, src_port, dst_cid, dst_port in rows:
        key = ((int(src_cid), int(src_port)), (int(dst_cid), int(dst_port)))
        streams.setdefault(key, []).append(int(stream))
    return streams


def node_port(node):
    """'local:1234' -> 1234; a node that sent nothing is ':0'."""
    return int(node.rsplit(":", 1)[1])


@pytest.mark.parametrize("pcap", REAL, ids=relative)
def test_follow_raw_is_what_each_application_sent(tshark, pcap):
    """-z follow,vsock,raw,N: each side's bytes match the ground truth of every connection."""
    capture = tshark.capture(relative(pcap))
    truth = ground_truth(pcap)
    streams = request_streams(tshark, capture)
    wanted = {}
    for conn in truth["connections"]:
        src = (conn["src"]["cid"], conn["src"]["port"])
        dst = (conn["dst"]["cid"], conn["dst"]["port"])
        assert len(streams.get((src, dst), [])) == 1, conn["name"]
        wanted[conn["name"]] = (conn, streams[(src, dst)][0])

    args = ["-r", capture, "-q"]
    for _, stream in wanted.values():
        args += ["-z", f"follow,vsock,raw,{stream}"]
    blocks = follow_blocks(tshark.text(args))

    for name, (conn, stream) in wanted.items():
        nodes, sent = parse_raw_follow(blocks[f"vsock.stream eq {stream}"])
        # Node 0 is the connecting side (TCP's Follow: the sender of the SYN),
        # also when the listening side speaks first (an SSH banner).
        if conn["src_to_dst"]["bytes"] or conn["dst_to_src"]["bytes"]:
            assert [node_port(node) for node in nodes] == [conn["src"]["port"], conn["dst"]["port"]], name
        check_direction(f"{name} src_to_dst", sent[0], conn["src_to_dst"])
        check_direction(f"{name} dst_to_src", sent[1], conn["dst_to_src"])


def test_follow_names_the_connecting_side_when_the_server_speaks_first(tshark):
    """real/multi_halfclose.pcap, connection B: the server on port 6002 sends its banner
    first; node 0 is still the client that connected (stream 2)."""
    capture = tshark.capture("real/multi_halfclose.pcap")
    conn = {c["name"]: c for c in ground_truth(os.path.join(CAPTURES, "real", "multi_halfclose.pcap"))[
        "connections"]}["B-server-halfclose"]
    first_rw = tshark.fields(capture, ["vsock.src_port"], "vsock.stream == 2 && vsock.virtio.op == 5")[0][0]
    assert int(first_rw) == conn["dst"]["port"] == 6002
    nodes, sent = parse_raw_follow(follow_blocks(tshark.text(["-r", capture, "-q", "-z", "follow,vsock,raw,2"]))[
        "vsock.stream eq 2"])
    assert nodes == [f"1:{conn['src']['port']}", "1:6002"]
    assert (len(sent[0]), len(sent[1])) == (conn["src_to_dst"]["bytes"], conn["dst_to_src"]["bytes"]) == (30000, 37)


GOOD_FOLLOW_HEX = """\
Follow: vsock,hex
Filter: vsock.stream eq 0
Node 0: 3:50000
Node 1: 2:1234
00000000  68 65 6c 6c 6f 0a                                 hello.
\t00000000  77 6f 72 6c 64 21 0a                              world!.
"""

GOOD_FOLLOW_ASCII = """\
Follow: vsock,ascii
Filter: vsock.stream eq 0
Node 0: 3:50000
Node 1: 2:1234
6
hello

\t7
world!

"""

GOOD_FOLLOW_RAW = """\
Follow: vsock,raw
Filter: vsock.stream eq 0
Node 0: 3:50000
Node 1: 2:1234
68656c6c6f0a
\t776f726c64210a
"""


@pytest.mark.parametrize("mode,expected", [("hex", GOOD_FOLLOW_HEX), ("ascii", GOOD_FOLLOW_ASCII),
                                           ("raw", GOOD_FOLLOW_RAW)])
def test_follow_good_stream_0(tshark, mode, expected):
    """The whole Follow block of good.pcap stream 0: RW payloads only, client first."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", f"follow,vsock,{mode},0"])
    assert f"\n{SEPARATOR}\n{expected}{SEPARATOR}\n" in out


def test_follow_seqpacket_stream(tshark):
    """Seqpacket messages are followed as their bytes, in order (good.pcap stream 1)."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "follow,vsock,raw,1"])
    nodes, sent = parse_raw_follow(follow_blocks(out)["vsock.stream eq 1"])
    assert nodes == ["3:50001", "2:5000"]
    assert [len(sent[0]), len(sent[1])] == [160, 0]


def test_follow_nonexistent_stream(tshark):
    """A stream that does not exist: an empty block, no error."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "follow,vsock,ascii,99"])
    assert (f"\n{SEPARATOR}\nFollow: vsock,ascii\nFilter: vsock.stream eq 99\n"
            f"Node 0: :0\nNode 1: :0\n{SEPARATOR}\n") in out


def test_follow_refuses_ip_addresses(tshark):
    """The address form of -z follow takes IP addresses, which vsock has not: a clean error."""
    rc, _, err = tshark.run(["-r", tshark.capture(GOOD), "-q", "-z", "follow,vsock,raw,1.2.3.4:1,5.6.7.8:2"],
                            check=False)
    assert rc != 0
    assert "Error creating filter for this address/port pair" in err


def test_follow_filter_selects_the_stream(tshark):
    """The filter Follow and the conversation filter build selects that stream's frames."""
    capture = tshark.capture(GOOD)
    out = tshark.text(["-r", capture, "-q", "-z", "follow,vsock,raw,1"])
    assert "vsock.stream eq 1" in follow_blocks(out)
    assert tshark.frames(capture, "vsock.stream eq 1") == list(range(11, 18))


def test_registered_in_tshark(tshark):
    """-z follow,vsock / conv,vsock / endpoints,vsock / vsock,tree are offered."""
    _, out, err = tshark.run(["-z", "help"], check=False)
    offered = set((out + err).split())
    assert {"follow,vsock", "conv,vsock", "endpoints,vsock", "vsock,tree"} <= offered


SIZE = r"(\d+ [kMG]?B|\d+ bytes)"
CONV_ROW = re.compile(rf"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+{SIZE}\s+(\d+)\s+{SIZE}\s+(\d+)\s+{SIZE}"
                      r"\s+([\d.]+)\s+([\d.]+)$")


def size(text):
    """'311 bytes' -> 311; larger sizes stay as tshark rounds them ('1059 kB')."""
    number, unit = text.split()
    return int(number) if unit == "bytes" else text


def conversation_rows(text):
    """-z conv,vsock rows: (A, B, frames B->A, bytes B->A, frames A->B, bytes A->B,
    frames, bytes, relative start, duration)."""
    rows = []
    for line in text.splitlines():
        m = CONV_ROW.match(line)
        if m:
            a, b, f1, b1, f2, b2, f3, b3, start, duration = m.groups()
            rows.append((a, b, int(f1), size(b1), int(f2), size(b2), int(f3), size(b3), start, duration))
    return rows


def endpoint_rows(text):
    """-z endpoints,vsock rows: (address, packets, bytes, tx packets, tx bytes, rx packets, rx bytes)."""
    rows = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("vsock Endpoints"):
            in_table = True
        elif in_table and line.startswith("====="):
            break
        elif in_table:
            # 4.6 prints sizes with a unit: "877 bytes".
            fields = line.replace(" bytes", "").split()
            if len(fields) == 7 and all(n.isdigit() for n in fields[1:]):
                rows.append((fields[0], *[int(n) for n in fields[1:]]))
    return rows


# good.pcap: one row per stream (the stream is the conversation id), then the
# frame of an unknown transport (no stream: addresses and ports).
GOOD_CONVERSATIONS = [
    ("3", "host", 4, 311, 6, 462, 10, 773, "0.000000000", "0.0090"),    # stream 0, stream socket
    ("3", "host", 2, 152, 5, 540, 7, 692, "0.010000000", "0.0060"),     # stream 1, seqpacket
    ("3", "host", 0, 0, 2, 72, 2, 72, "0.020000000", "0.0010"),         # stream 5, "no info" transport
    ("3", "host", 0, 0, 1, 81, 1, 81, "0.017000000", "0.0000"),         # stream 2, dgram
    ("local", "local", 0, 0, 1, 76, 1, 76, "0.018000000", "0.0000"),    # stream 3, unanswered
    ("hypervisor", "any", 0, 0, 1, 76, 1, 76, "0.019000000", "0.0000"),  # stream 4
    ("3", "host", 0, 0, 1, 32, 1, 32, "0.022000000", "0.0000"),         # unknown transport
]


def test_conversations_good(tshark):
    """-z conv,vsock: packets and bytes each way, start and duration per stream."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "conv,vsock"])
    assert "vsock Conversations" in out
    assert conversation_rows(out) == GOOD_CONVERSATIONS


def test_conversations_real_stream_basic(tshark):
    """A real capture: one connection of 10 frames, 6 from the client."""
    out = tshark.text(["-r", tshark.capture("real/stream_basic.pcap"), "-q", "-z", "conv,vsock"])
    assert conversation_rows(out) == [("local", "local", 4, 360, 6, 484, 10, 844, "0.000000000", "0.0179")]


def test_conversations_one_row_per_connection(tshark):
    """Seven interleaved connections between the same two CIDs: seven rows, all frames counted."""
    capture = tshark.capture("reference/stream_multi.pcap")
    rows = conversation_rows(tshark.text(["-r", capture, "-q", "-z", "conv,vsock"]))
    assert len(rows) == 7
    assert sum(row[6] for row in rows) == len(tshark.frames(capture, "vsock"))


def test_conversations_follow_a_display_filter(tshark):
    """The table counts only what the tap's filter passes."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "conv,vsock,vsock.stream eq 1"])
    assert conversation_rows(out) == [GOOD_CONVERSATIONS[1]]


GOOD_ENDPOINTS = [
    ("host", 13, 877, 4, 311, 9, 566),
    ("3", 10, 773, 6, 462, 4, 311),
    ("3", 7, 692, 5, 540, 2, 152),
    ("host", 7, 692, 2, 152, 5, 540),
    ("3", 3, 104, 3, 104, 0, 0),
    ("3", 1, 81, 1, 81, 0, 0),
    ("host", 1, 81, 0, 0, 1, 81),
    ("local", 1, 76, 1, 76, 0, 0),
    ("local", 1, 76, 0, 0, 1, 76),
    ("hypervisor", 1, 76, 1, 76, 0, 0),
    ("any", 1, 76, 0, 0, 1, 76),
]


def test_endpoints_good(tshark):
    """-z endpoints,vsock: one row per CID and port (tshark prints no port column for vsock)."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "endpoints,vsock"])
    assert sorted(endpoint_rows(out)) == sorted(GOOD_ENDPOINTS)


def stats_tree_rows(text):
    """(depth, name, count) of each -z vsock,tree row."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Topic / Item"))
    count_at = lines[header].index("Count")
    rows = []
    for line in lines[header + 2:]:
        if not line.strip() or line.startswith("-----"):
            break
        name = line[:count_at].rstrip()
        rows.append((len(name) - len(name.lstrip()), name.strip(), int(line[count_at:].split()[0])))
    return rows


GOOD_STATS = [
    (0, "Packets by socket type and operation", 23),
    (1, "dgram", 1),
    (2, "RW", 1),
    (1, "no virtio header", 3),
    (2, "Connect", 1),
    (2, "Disconnect", 1),
    (2, "Unknown", 1),
    (1, "seqpacket", 7),
    (2, "REQUEST", 1),
    (2, "RESPONSE", 1),
    (2, "RST", 1),
    (2, "RW", 3),
    (2, "SHUTDOWN", 1),
    (1, "stream", 12),
    (2, "CREDIT_REQUEST", 1),
    (2, "CREDIT_UPDATE", 1),
    (2, "REQUEST", 3),
    (2, "RESPONSE", 1),
    (2, "RST", 1),
    (2, "RW", 2),
    (2, "SHUTDOWN", 3),
    (0, "Streams", 6),
    (1, "Stream 0: 3:50000 <-> 2:1234", 10),
    (2, "Packets A->B", 6),
    (2, "Packets B->A", 4),
    (2, "Payload bytes A->B", 6),
    (2, "Payload bytes B->A", 7),
    (2, "State Closed", 1),           # the final state counts 1 ...
    (2, "State Closing", 0),          # ... the states passed through 0
    (2, "State Connecting", 0),
    (2, "State Established", 0),
    (1, "Stream 1: 3:50001 <-> 2:5000", 7),
    (2, "Packets A->B", 5),
    (2, "Packets B->A", 2),
    (2, "Payload bytes A->B", 160),
    (2, "Payload bytes B->A", 0),
    (2, "State Closed", 1),
    (2, "State Closing", 0),
    (2, "State Connecting", 0),
    (2, "State Established", 0),
    (1, "Stream 2: 3:50002 <-> 2:6000", 1),   # dgram: no connection state
    (2, "Packets A->B", 1),
    (2, "Payload bytes A->B", 5),
    (1, "Stream 3: 1:40000 <-> 1:40001", 1),
    (2, "Packets A->B", 1),
    (2, "Payload bytes A->B", 0),
    (2, "State Connecting", 1),
    (1, "Stream 4: 0:100 <-> 4294967295:200", 1),
    (2, "Packets A->B", 1),
    (2, "Payload bytes A->B", 0),
    (2, "State Connecting", 1),
    (1, "Stream 5: 3:50003 <-> 2:1234", 2),   # "no info" transport: no analysis, no state
    (2, "Packets A->B", 2),
    (2, "Payload bytes A->B", 0),
    (1, "Streams by state", 4),               # streams counted by their latest state
    (2, "Closed", 2),
    (2, "Closing", 0),
    (2, "Connecting", 2),
    (2, "Established", 0),
]


def test_stats_tree_good(tshark):
    """-z vsock,tree: operations per socket type, and per stream packets, bytes and final state."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-q", "-z", "vsock,tree"])
    assert "vsock operations and streams:" in out
    assert stats_tree_rows(out) == GOOD_STATS


def test_stats_tree_two_pass(tshark):
    """With -2 the taps run on the second pass only: the same tree."""
    out = tshark.text(["-r", tshark.capture(GOOD), "-2", "-q", "-z", "vsock,tree"])
    assert stats_tree_rows(out) == GOOD_STATS


@pytest.mark.parametrize("pcap", REAL + [os.path.join(CAPTURES, GOOD)], ids=relative)
def test_stats_tree_final_states(tshark, pcap):
    """Per stream, the State row that counts 1 is vsock.state of the stream's last packet."""
    capture = tshark.capture(relative(pcap))
    state_names = {value: name for name, value in tshark.field_values("vsock.state").items()}
    last_state = {}
    for stream, state in tshark.fields(capture, ["vsock.stream", "vsock.state"], "vsock.state"):
        last_state[int(stream)] = state_names[state]
    rows = stats_tree_rows(tshark.text(["-r", capture, "-q", "-z", "vsock,tree"]))
    finals, stream = {}, None
    for depth, name, count in rows:
        if depth == 1 and name.startswith("Stream "):
            stream = int(name.split()[1].rstrip(":"))
        elif depth == 2 and name.startswith("State ") and count == 1:
            assert stream not in finals
            finals[stream] = name[len("State "):]
    assert finals == last_state


def test_stats_tree_final_states_named(tshark):
    """Refused connections end refused, a clean close ends closed."""
    for capture, finals in (("real/refused.pcap", {"Refused"}), ("real/stream_basic.pcap", {"Closed"})):
        rows = stats_tree_rows(tshark.text(["-r", tshark.capture(capture), "-q", "-z", "vsock,tree"]))
        assert {name for depth, name, count in rows if name.startswith("State ") and count == 1} == \
            {f"State {final}" for final in finals}


def test_stats_tree_payload_bytes_match_ground_truth(tshark):
    """Per-direction payload bytes of a real capture equal what the applications sent."""
    rows = stats_tree_rows(tshark.text(["-r", tshark.capture("real/http.pcap"), "-q", "-z", "vsock,tree"]))
    counts = {name: count for depth, name, count in rows if depth == 2}
    conn = ground_truth(os.path.join(CAPTURES, "real", "http.pcap"))["connections"][0]
    assert counts["Payload bytes A->B"] == conn["src_to_dst"]["bytes"]
    assert counts["Payload bytes B->A"] == conn["dst_to_src"]["bytes"]


def test_without_connection_analysis(tshark):
    """vsock.analyze_connections off: connection tracking still numbers the streams, so
    the tables and Follow work as with it; the tree has no states."""
    capture = tshark.capture(GOOD)
    args = ["-r", capture, "-q", "-z", "conv,vsock", "-z", "vsock,tree", "-z", "follow,vsock,raw,0"]
    on = tshark.text(args)
    off = tshark.text(args[:3] + ["-o", "vsock.analyze_connections:FALSE"] + args[3:])
    assert conversation_rows(off) == conversation_rows(on)
    assert follow_blocks(off)["vsock.stream eq 0"] == follow_blocks(on)["vsock.stream eq 0"]
    assert "Node 0: 3:50000" in follow_blocks(off)["vsock.stream eq 0"]
    stats_on, stats_off = stats_tree_rows(on), stats_tree_rows(off)
    by_state = stats_on.index((1, "Streams by state", 4))
    assert [r for r in stats_on if r[1].startswith("State ")]
    assert stats_off == [r for r in stats_on[:by_state] if not r[1].startswith("State ")] + \
        [(1, "Streams by state", 0)]


def test_stats_tree_lists_the_first_256_streams_and_sums_the_others(tshark):
    """1,500 streams: rows for streams 0-255, "Other streams" for the rest (their
    packets and bytes summed), every stream counted under "Streams by state"."""
    capture = tshark.capture("synthetic/analysis_many_streams.pcap")
    rows = stats_tree_rows(tshark.text(["-r", capture, "-q", "-z", "vsock,tree"]))
    listed = [int(name.split()[1].rstrip(":")) for depth, name, _ in rows
              if depth == 1 and name.startswith("Stream ")]
    assert sorted(listed) == list(range(256))
    other = rows.index(next(r for r in rows if r[1] == "Other streams"))
    packets = tshark.fields(capture, ["vsock.stream", "vsock.len"], "vsock.stream >= 256")
    assert rows[other][2] == len(packets)
    sums = {name: count for _, name, count in rows[other + 1:other + 5]}
    assert sums["Packets A->B"] + sums["Packets B->A"] == len(packets)
    assert sums["Payload bytes A->B"] + sums["Payload bytes B->A"] == sum(int(n) for _, n in packets)
    assert (0, "Streams", 1500) in rows
    by_state = rows.index(next(r for r in rows if r[1] == "Streams by state"))
    assert rows[by_state][2] == 1500
    finals = {}
    for stream, state in tshark.fields(capture, ["vsock.stream", "vsock.state"]):
        finals[stream] = state
    names = {value: name for name, value in tshark.field_values("vsock.state").items()}
    expected = {}
    for state in finals.values():
        expected[names[state]] = expected.get(names[state], 0) + 1
    counted = {name: count for depth, name, count in rows[by_state + 1:] if depth == 2 and count}
    assert counted == expected
