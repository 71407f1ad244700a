"""gvisor-tap-vsock (Podman machine, CRC): the forwarder's POST /connect, then
length-prefixed Ethernet frames both ways, handed to Wireshark's Ethernet
dissector; /tunnel's "OK" and relayed TCP; damaged tunnels.

Captures: test-captures/synthetic/gvtap_*.pcap from tools/gen_gvtap_captures.py,
whose docstring lists every frame; the expected Ethernet frames and HTTP bodies
come from that script.
"""

import hashlib
import json
import os
import sys

import pytest

from vsocktest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import gen_gvtap_captures as gen  # noqa: E402  (the path is set just above)

CONNECT = "synthetic/gvtap_connect.pcap"
MIDSTREAM = "synthetic/gvtap_midstream.pcap"
TUNNEL = "synthetic/gvtap_tunnel.pcap"
AFTER_HTTP = "synthetic/gvtap_after_http.pcap"
BAD = "synthetic/gvtap_bad.pcap"

DECODE_AS = ["-d", "vsock.port==1024,gvtap"]
PASSES = {"one pass": [], "two passes": ["-2"]}

FROM_VM, TO_VM = "0", "1"


def flatten(items):
    """(who, frame or [frames]) -> per side ('c' VM, 's' host) the frames in order."""
    frames = {"c": [], "s": []}
    for who, frame in items:
        frames[who] += frame if isinstance(frame, list) else [frame]
    return frames


def pairs_hook(pairs):
    """JSON objects with repeated keys (one per gvtap item of a packet): lists."""
    out = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def tunnel_frames(tshark, capture, extra=()):
    """Every frame the dissector found, in order: (frame number, side, the
    Ethernet frame's bytes), from each gvtap item's bytes (length + frame). The
    side is gvtap.direction ("0" from the VM, "1" to it) when the request was
    seen, else "cid N", the vsock source CID."""
    out = tshark.text(["-r", capture, "-T", "json", "-x", "-J", "frame vsock gvtap"] + list(extra))
    found = []
    for packet in json.loads(out, object_pairs_hook=pairs_hook):
        layers = packet["_source"][0]["layers"][0]
        number = int(layers["frame"][0]["frame.number"][0])
        src_cid = layers["vsock"][0]["vsock.src_cid"][0]
        for raw, tree in zip(layers.get("gvtap_raw", []), layers.get("gvtap", [])):
            data = bytes.fromhex(raw[0])
            side = tree["gvtap.direction"][0] if "gvtap.direction" in tree else "cid " + src_cid
            if "gvtap.frame_len" in tree and int.from_bytes(data[:2], "little") == len(data) - 2:
                found.append((number, side, data[2:]))
    return found


def frames_of(found, side):
    return [data for _, found_side, data in found if found_side == side]


def test_connect_request(tshark):
    capture = tshark.capture(CONNECT)
    rows = tshark.fields(capture, ["frame.number", "gvtap.method", "gvtap.path", "gvtap.version",
                                   "gvtap.direction", "_ws.col.Protocol", "_ws.col.Info"], "gvtap.method")
    assert rows == [["3", "POST", "/connect", "HTTP/1.1", FROM_VM, "gvisor-tap-vsock", "POST /connect HTTP/1.1"]]
    assert tshark.column(capture, "gvtap.header", "frame.number == 3") == [
        "Host: |User-Agent: Go-http-client/1.1|Content-Length: 0"]
    # Wireshark's HTTP heuristic, also in the "vsock" list, does not take it.
    assert tshark.frames(capture, "http.request.method == \"POST\"") == []


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_connect_every_frame_dissected_once(tshark, passes):
    expected = flatten(gen.connect_items())
    found = tunnel_frames(tshark, tshark.capture(CONNECT), passes)
    assert frames_of(found, FROM_VM) == expected["c"]
    assert frames_of(found, TO_VM) == expected["s"]
    assert len(found) == len(expected["c"]) + len(expected["s"])


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_connect_inner_protocols(tshark, passes):
    capture = tshark.capture(CONNECT)
    assert tshark.frames(capture, "dhcp", passes) == [4, 6, 7, 9]
    assert tshark.column(capture, "dhcp.option.dhcp", "dhcp", passes) == ["1", "2", "3", "5"]
    assert tshark.frames(capture, "arp", passes) == [10, 12]
    assert tshark.frames(capture, "dns", passes) == [13, 15]
    assert tshark.column(capture, "dns.a", "dns.flags.response == 1", passes) == ["192.168.127.254"]
    assert tshark.frames(capture, "http.request", passes) == [19]
    assert tshark.frames(capture, "http.response.code == 200", passes) == [32]
    assert tshark.column(capture, "tcp.len", "tcp.len > 0 && ip.src == 192.168.127.254", passes) == [
        "1460|1460", "1460|1460", "1460", "1460|1460|1460", "1460|1460", "1460|1460", "1460",
        str(len(gen.HTTP_RESPONSE) - 13 * 1460)]
    assert tshark.column(capture, "ip.src", "tcp.flags.syn == 1", passes) == ["192.168.127.2", "192.168.127.254"]


def test_connect_tcp_reassembly_inside_the_tunnel(tshark):
    """TCP's own reassembly: the response's segments, carried whole or in parts
    by vsock packets 20-31, are reassembled in 32 (known on a second pass, as
    over plain TCP)."""
    capture = tshark.capture(CONNECT)
    rows = tshark.fields(capture, ["frame.number", "tcp.reassembled_in"], "tcp.reassembled_in", ["-2"])
    assert [row[0] for row in rows] == ["21", "23", "24", "25", "28", "30", "31"]
    assert all(set(row[1].split("|")) == {"32"} for row in rows)


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_connect_http_body_exported_byte_exact(tshark, passes):
    capture = tshark.capture(CONNECT)
    folder = os.path.join(tshark.scratch, "export-connect" + "".join(passes))
    os.makedirs(folder, mode=0o777)
    os.chmod(folder, 0o777)
    tshark.run(["-r", capture, "-q", "--export-objects", "http," + folder] + passes)
    assert os.listdir(folder) == ["file.bin"]
    with open(os.path.join(folder, "file.bin"), "rb") as f:
        body = f.read()
    assert len(body) == 20000
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(gen.HTTP_BODY).hexdigest()


def test_connect_info_column(tshark):
    capture = tshark.capture(CONNECT)
    info = dict(tshark.fields(capture, ["frame.number", "_ws.col.Info"]))
    assert info["4"] == "DHCP Discover - Transaction ID 0x3903f326"
    assert info["10"] == "Who has 192.168.127.1? Tell 192.168.127.2"
    assert info["13"] == "Standard query 0x1a2b A host.containers.internal"
    # Two frames in one packet: both, in order.
    assert info["19"].startswith("43210 \u2192 80 [ACK] Seq=1 Ack=1")
    assert ", GET /file.bin HTTP/1.1" in info["19"]
    # gvproxy's length alone: the vsock segment.
    assert info["5"] == "1024 \u2192 2283 [RW] Len=2 [vsock segment of a reassembled PDU]"
    proto = dict(tshark.fields(capture, ["frame.number", "_ws.col.Protocol"]))
    assert [proto[n] for n in ("3", "4", "10", "13", "16", "32")] == [
        "gvisor-tap-vsock", "DHCP", "ARP", "DNS", "TCP", "HTTP"]


def test_connect_direction_and_request_link(tshark):
    capture = tshark.capture(CONNECT)
    rows = tshark.fields(capture, ["frame.number", "gvtap.direction", "gvtap.request_in"],
                         "frame.number == 4 || frame.number == 6 || frame.number == 19")
    assert rows == [["4", FROM_VM, "3"], ["6", TO_VM, "3"], ["19", "0|0", "3|3"]]


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_http_heuristic_after_a_match_does_not_take_the_tunnel(tshark, passes):
    """Wireshark asks the heuristic that matched last first: HTTP, having
    recognised the plain HTTP connection of frames 3-4, comes before ours."""
    capture = tshark.capture(AFTER_HTTP)
    assert tshark.frames(capture, "http", passes) == [3, 4]
    assert tshark.frames(capture, "gvtap.method", passes) == [9]
    assert tshark.frames(capture, "dhcp", passes) == [10, 12]


def test_heuristic_can_be_switched_off(tshark):
    capture = tshark.capture(CONNECT)
    off = ["--disable-heuristic", "gvtap_vsock"]
    assert tshark.frames(capture, "gvtap", off) == []
    # Then HTTP's heuristic takes the request, and the frames are data.
    assert tshark.column(capture, "http.request.uri", "http.request", off) == ["/connect"]
    assert tshark.frames(capture, "dhcp", off) == []


def test_port_table_first(tshark):
    """With the port table tried before the heuristics, port 1024's ttrpc is
    asked first, refuses the request, and the heuristic still finds it."""
    capture = tshark.capture(CONNECT)
    extra = ["-o", "vsock.try_heuristic_first:FALSE"]
    assert tshark.frames(capture, "gvtap.method", extra) == [3]
    assert tshark.frames(capture, "dhcp", extra) == [4, 6, 7, 9]
    assert tshark.frames(capture, "ttrpc", extra) == []


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_decode_as_on_a_whole_connection(tshark, passes):
    """Decode As comes before the heuristics: the request is recognised all the same."""
    expected = flatten(gen.connect_items())
    found = tunnel_frames(tshark, tshark.capture(CONNECT), DECODE_AS + passes)
    assert frames_of(found, FROM_VM) == expected["c"]
    assert frames_of(found, TO_VM) == expected["s"]
    assert tshark.frames(tshark.capture(CONNECT), "gvtap.method", DECODE_AS + passes) == [3]


def test_midstream_needs_decode_as(tshark):
    capture = tshark.capture(MIDSTREAM)
    assert tshark.frames(capture, "gvtap or eth") == []


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_midstream_decode_as(tshark, passes):
    capture = tshark.capture(MIDSTREAM)
    extra = DECODE_AS + passes
    # Each direction starts inside a frame: skipped until a frame starts.
    assert tshark.frames(capture, "gvtap.unsynchronized", extra) == [1, 2]
    expected = flatten(gen.midstream_items())
    found = tunnel_frames(tshark, capture, extra)
    assert frames_of(found, "cid 3") == expected["c"]
    assert frames_of(found, "cid 2") == expected["s"]
    assert len(found) == len(expected["c"]) + len(expected["s"])
    assert tshark.frames(capture, "arp", extra) == [3, 5]
    assert tshark.frames(capture, "dns", extra) == [6, 8]
    assert tshark.frames(capture, "http", extra) == [12, 14]
    assert tshark.column(capture, "http.content_length", "http.response", extra) == [str(len(gen.SMALL_BODY))]
    # No request seen: no direction, no link.
    assert tshark.frames(capture, "gvtap.direction or gvtap.request_in", extra) == []


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_tunnel(tshark, passes):
    capture = tshark.capture(TUNNEL)
    rows = tshark.fields(capture, ["frame.number", "gvtap.path", "gvtap.tunnel.ip", "gvtap.tunnel.port"],
                         "gvtap.path", passes)
    assert rows == [["3", "/tunnel?ip=192.168.127.2&port=80", "192.168.127.2", "80"]]
    rows = tshark.fields(capture, ["frame.number", "gvtap.answer", "gvtap.direction", "_ws.col.Info"],
                         "gvtap.answer", passes)
    assert rows == [["4", "OK", TO_VM, "OK (tunnel to 192.168.127.2:80)"]]
    # The relayed TCP goes to the dissector of port 80: HTTP, reassembled.
    assert tshark.column(capture, "http.request.uri", "http.request", passes) == ["/index.html"]
    assert tshark.frames(capture, "http.response.code == 200", passes) == [7]
    assert tshark.frames(capture, "vsock.segment_data", passes) == [6]
    folder = os.path.join(tshark.scratch, "export-tunnel" + "".join(passes))
    os.makedirs(folder, mode=0o777)
    os.chmod(folder, 0o777)
    tshark.run(["-r", capture, "-q", "--export-objects", "http," + folder] + passes)
    with open(os.path.join(folder, "index.html"), "rb") as f:
        assert f.read() == gen.TUNNEL_BODY


GVTAP_EXPERTS = {
    "gvtap.request.incomplete", "gvtap.request.no_frames", "gvtap.tunnel.target.bad", "gvtap.answer.http",
    "gvtap.answer.not_ok", "gvtap.frame_len.zero", "gvtap.frame_len.short", "gvtap.frame.incomplete",
    "gvtap.frame.unfinished", "gvtap.not_frames", "gvtap.unsynchronized",
}


def experts(tshark, capture, extra=()):
    """Frame number -> the gvtap expert infos on it."""
    names = tshark.pdml_field_names(capture, extra)
    return {number: sorted(fields & GVTAP_EXPERTS) for number, fields in enumerate(names, start=1)
            if fields & GVTAP_EXPERTS}


BAD_EXPERTS = {
    4: ["gvtap.frame_len.short", "gvtap.frame_len.zero"],
    11: ["gvtap.not_frames"],
    22: ["gvtap.answer.http"],
    27: ["gvtap.tunnel.target.bad"],
    28: ["gvtap.answer.http"],
}
# Known once every packet was seen.
BAD_EXPERTS_SECOND_PASS = {
    3: ["gvtap.frame.unfinished"],
    10: ["gvtap.request.no_frames"],
    16: ["gvtap.request.no_frames"],
    21: ["gvtap.request.no_frames"],
    33: ["gvtap.frame.unfinished"],
}


def test_bad_input_one_pass(tshark):
    assert experts(tshark, tshark.capture(BAD)) == BAD_EXPERTS


def test_bad_input_two_passes(tshark):
    capture = tshark.capture(BAD)
    assert experts(tshark, capture, ["-2"]) == {**BAD_EXPERTS, **BAD_EXPERTS_SECOND_PASS}
    messages = tshark.column(capture, "_ws.expert.message", "frame.number == 3", ["-2"])
    assert messages == ["Host to VM: the stream ends inside a frame that starts in frame 5"]
    messages = tshark.column(capture, "_ws.expert.message", "frame.number == 33", ["-2"])
    assert messages == ["VM to host: the stream ends inside a frame that starts in frame 34"]


def test_bad_input_rest_still_dissected(tshark):
    capture = tshark.capture(BAD)
    # Frame 4: ARP, a zero length, a 5-byte frame, ARP: all four, in order.
    assert tshark.column(capture, "gvtap.frame_len", "frame.number == 4") == ["42|0|5|42"]
    assert tshark.column(capture, "arp.opcode", "frame.number == 4") == ["1|1"]
    assert tshark.column(capture, "gvtap.data", "frame.number == 4") == ["73686f7274"]
    # The text after a request is data; the HTTP answers are HTTP.
    assert tshark.column(capture, "gvtap.data", "frame.number == 11") == [
        b"this is not an Ethernet frame\n".hex()]
    assert tshark.column(capture, "http.response.code", "http.response") == ["404", "500"]
    # The last ARP request before the capture's end, and the requests.
    assert tshark.frames(capture, "arp") == [4, 34]
    assert tshark.frames(capture, "gvtap.method") == [3, 10, 16, 21, 27, 33]
    # The 5-byte frame is malformed; no exception anywhere.
    assert tshark.frames(capture, "_ws.malformed") == [4]


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
@pytest.mark.parametrize("name", [CONNECT, MIDSTREAM, TUNNEL, AFTER_HTTP, BAD])
def test_no_exception(tshark, name, passes):
    capture = tshark.capture(name)
    for extra in ([], DECODE_AS):
        assert tshark.frames(capture, "_ws.malformed.expert", passes + extra) == []


def test_bad_input_without_reassembly(tshark):
    capture = tshark.capture(BAD)
    off = ["-o", "vsock.desegment:FALSE"]
    assert tshark.frames(capture, "gvtap.frame.incomplete", off) == [5, 34]
    assert tshark.column(capture, "_ws.expert.message", "gvtap.frame.incomplete && frame.number == 5", off) == [
        "Frame of 1500 bytes, 100 in this packet, and no reassembly"]
    assert tshark.frames(capture, "arp", off) == [4, 34]


def test_ttrpc_on_port_1024_stays_ttrpc(tshark):
    for name in ("synthetic/ttrpc_agent.pcap", "synthetic/ttrpc_midstream.pcap", "synthetic/ttrpc_bad.pcap"):
        capture = tshark.capture(name)
        assert tshark.frames(capture, "gvtap") == []
        fields = ["frame.number", "ttrpc.stream_id", "ttrpc.method"]
        assert tshark.fields(capture, fields) == tshark.fields(
            capture, fields, extra=["--disable-protocol", "gvtap"])
    assert tshark.frames(tshark.capture("synthetic/ttrpc_agent.pcap"), "ttrpc.method == \"Check\"") == [3, 4]


def test_without_connection_tracking(tshark):
    """The request is recognised; the tunnel's later payloads need vsock's
    connection tracking (the reassembly and the connection's memory)."""
    capture = tshark.capture(CONNECT)
    off = ["-o", "vsock.analyze_connections:FALSE"]
    assert tshark.frames(capture, "gvtap.method", off) == [3]
    # With Decode As, the forwarder's frames (whole in each packet) still are.
    assert tshark.frames(capture, "dhcp.option.dhcp == 1 || dhcp.option.dhcp == 3", off + DECODE_AS) == [4, 7]


# ---- the real capture: gvproxy 0.8.1 (Debian sid) on vsock, made by tools/vm-capture ----

REAL = "real/gvproxy.pcap"


def real_truth():
    with open(os.path.join(REPO, "test-captures", REAL.replace(".pcap", ".json"))) as f:
        truth = json.load(f)
    return {conn["name"]: conn for conn in truth["connections"]}, truth


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_real_every_frame_dissected(tshark, passes):
    conns, _ = real_truth()
    truth = conns["forwarder"]["frames"]
    found = tunnel_frames(tshark, tshark.capture(REAL), passes)
    for side, name in ((FROM_VM, "vm_to_gvproxy"), (TO_VM, "gvproxy_to_vm")):
        expected = [(f["len"], f["sha256"]) for f in truth if f["direction"] == name]
        got = [(len(data), hashlib.sha256(data).hexdigest()) for data in frames_of(found, side)]
        assert got == expected, name
        assert len(got) == conns["forwarder"]["frame_totals"][name]["frames"]


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_real_http_body_exported_byte_exact(tshark, passes):
    _, truth = real_truth()
    capture = tshark.capture(REAL)
    folder = os.path.join(tshark.scratch, "export-real" + "".join(passes))
    os.makedirs(folder, mode=0o777)
    os.chmod(folder, 0o777)
    tshark.run(["-r", capture, "-q", "--export-objects", "http," + folder] + passes)
    assert os.listdir(folder) == ["body.txt"]
    with open(os.path.join(folder, "body.txt"), "rb") as f:
        body = f.read()
    assert len(body) == truth["http"]["body_len"]
    assert hashlib.sha256(body).hexdigest() == truth["http"]["body_sha256"]


def test_real_requests_and_inner_protocols(tshark):
    conns, truth = real_truth()
    capture = tshark.capture(REAL)
    rows = tshark.fields(capture, ["frame.number", "gvtap.path", "gvtap.tunnel.ip", "gvtap.tunnel.port"],
                         "gvtap.path")
    assert [row[1:] for row in rows] == [["/connect", "", ""], ["/tunnel?ip=192.168.127.2&port=7777",
                                                                "192.168.127.2", "7777"]]
    # The request bytes are the forwarder's.
    for (number, *_), name in zip(rows, ("forwarder", "tunnel")):
        request = conns[name].get("post_request") or conns[name]["tunnel"]["post_request"]
        assert tshark.column(capture, "vsock.payload", "frame.number == " + number) == [request["hex"]]
    assert tshark.column(capture, "dhcp.option.dhcp", "dhcp") == ["1", "2", "3", "5"]
    assert tshark.column(capture, "dns.a", "dns.flags.response == 1") == [
        truth["dns"]["parsed"]["answers"][0]["data"]]
    assert tshark.column(capture, "dns.id", "dns.flags.response == 1") == ["0x%04x" % truth["dns"]["parsed"]["id"]]
    assert tshark.column(capture, "http.request.uri", "http.request") == ["/body.txt"]
    assert tshark.frames(capture, "gvtap.answer == \"OK\"") != []


def test_real_tunnel_relayed_bytes(tshark):
    """/tunnel: the request, then the relayed bytes (to port 7777, which no
    dissector claims: data), each way as the client sent and read them."""
    conns, _ = real_truth()
    tunnel = conns["tunnel"]
    capture = tshark.capture(REAL)
    port = str(tunnel["src"]["port"])
    up = b"".join(bytes.fromhex(h) for h in tshark.column(capture, "gvtap.data", "vsock.src_port == " + port)
                  if h)
    down = b"".join(bytes.fromhex(h) for h in tshark.column(capture, "gvtap.data", "vsock.dst_port == " + port)
                    if h)
    request = bytes.fromhex(tunnel["tunnel"]["post_request"]["hex"])
    assert hashlib.sha256(request + up).hexdigest() == tunnel["src_to_dst"]["sha256"]
    assert len(down) + 2 == tunnel["dst_to_src"]["received_bytes"]
    assert hashlib.sha256(b"OK" + down).hexdigest() == tunnel["dst_to_src"]["received_sha256"]


@pytest.mark.parametrize("passes", PASSES.values(), ids=PASSES.keys())
def test_real_no_expert_no_exception(tshark, passes):
    capture = tshark.capture(REAL)
    assert experts(tshark, capture, passes) == {}
    assert tshark.frames(capture, "_ws.malformed", passes) == []
