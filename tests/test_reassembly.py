"""Application protocols across RW packets: stream desegmentation and seqpacket messages."""

import hashlib
import json
import os
import sys

import pytest

from vsocktest import CAPTURES, REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import gen_test_captures as gen  # noqa: E402  (the project's capture builder)


def truth(name):
    with open(os.path.join(CAPTURES, name + ".json")) as f:
        return json.load(f)


def test_http_response_of_100_kb_is_one_message(tshark):
    capture = tshark.capture("real/http.pcap")
    rows = tshark.fields(capture, ["frame.number", "http.request.method", "http.response.code",
                                   "http.content_length"], "http", extra=["-2"])
    assert rows == [["3", "GET", "", ""], ["8", "", "200", "100000"],
                    ["12", "POST", "", "347"], ["16", "", "201", "95"]]
    # The 100 kB body came in three RW packets, each POST message in two.
    assert tshark.fields(capture, ["frame.number", "vsock.reassembled_in"], "vsock.reassembled_in", extra=["-2"]) == \
        [["5", "8"], ["7", "8"], ["10", "12"], ["14", "16"]]
    assert tshark.column(capture, "vsock.segment.count", "frame.number == 8", extra=["-2"]) == ["3"]


@pytest.mark.parametrize("extra", [[], ["-o", "vsock.analyze_connections:FALSE"]], ids=["analysis", "no-analysis"])
def test_http_bodies_match_what_the_server_sent(tshark, extra):
    """Reassembly needs connection tracking, not the connection analysis: with
    vsock.analyze_connections off the 100 kB body is exported all the same."""
    export_dir = os.path.join(tshark.scratch, "http-objects-" + str(len(extra)))
    tshark.run(["-r", tshark.capture("real/http.pcap"), "-q", "--export-objects", f"http,{export_dir}"] + extra)
    bodies = {}
    for name in os.listdir(export_dir):
        with open(os.path.join(export_dir, name), "rb") as f:
            bodies[name] = hashlib.sha256(f.read()).hexdigest()
    exchanges = truth("real/http")["connections"][0]["http_exchanges"]
    assert exchanges[0]["response_body_sha256"] in bodies.values()
    assert exchanges[1]["request_body_sha256"] in bodies.values()
    assert exchanges[1]["response_body_sha256"] in bodies.values()
    if extra:
        assert tshark.fields(tshark.capture("real/http.pcap"), ["frame.number", "vsock.reassembled_in"],
                             "vsock.reassembled_in", extra=["-2"] + extra) == \
            [["5", "8"], ["7", "8"], ["10", "12"], ["14", "16"]]


def test_one_pass_shows_the_same_http_messages(tshark):
    capture = tshark.capture("real/http.pcap")
    assert tshark.frames(capture, "http.response") == [8, 16]
    assert tshark.column(capture, "_ws.col.Info", "frame.number == 5") == \
        ["8080 → 3376184832 [RW] Len=144 [vsock segment of a reassembled PDU]"]


def test_reassembly_can_be_turned_off(tshark):
    capture = tshark.capture("real/http.pcap")
    off = ["-o", "vsock.desegment:FALSE"]
    assert tshark.frames(capture, "http.response", extra=off) == [5, 14]
    assert tshark.frames(capture, "vsock.reassembled_in", extra=off + ["-2"]) == []


def test_tls_and_ssh_found_without_decode_as(tshark):
    tls = tshark.capture("real/tls.pcap")
    types = tshark.column(tls, "tls.handshake.type", "tls.handshake.type")
    assert types[0] == "1" and types[1].startswith("2")
    ssh = tshark.capture("real/ssh.pcap")
    assert tshark.frames(ssh, "ssh.protocol")[:2] == [3, 5]
    assert "20" in tshark.column(ssh, "ssh.message_code", "ssh.message_code")


def split_capture(tshark, name, source, frame, pieces, preamble=()):
    """A connection that carries the RW payloads of the `preamble` frames of a real
    capture whole, then the payload of `frame` in `pieces` RW packets."""
    def rw(number):
        src_cid, src_port, dst_cid, dst_port, payload = tshark.fields(
            tshark.capture(source), ["vsock.src_cid", "vsock.src_port", "vsock.dst_cid", "vsock.dst_port",
                                     "vsock.payload"], f"frame.number == {number}")[0]
        return (int(src_cid), int(src_port)), (int(dst_cid), int(dst_port)), bytes.fromhex(payload)

    src, dst, data = rw(frame)
    frames = [gen.virtio_frame(src, dst, gen.OP_REQUEST), gen.virtio_frame(dst, src, gen.OP_RESPONSE)]
    for number in preamble:
        sender, receiver, whole = rw(number)
        frames.append(gen.virtio_frame(sender, receiver, gen.OP_RW, payload=whole))
    step = len(data) // pieces + 1
    frames += [gen.virtio_frame(src, dst, gen.OP_RW, payload=data[i:i + step]) for i in range(0, len(data), step)]
    return tshark.scratch_file(name, gen.pcap_bytes(frames))


def test_tls_handshake_record_across_packets(tshark):
    capture = split_capture(tshark, "tls_split.pcap", "real/tls.pcap", 3, 3)
    assert tshark.frames(capture, "tls.handshake.type == 1", extra=["-2"]) == [5]
    assert tshark.frames(capture, "tls.handshake.type == 1") == [5]
    assert tshark.column(capture, "vsock.reassembled_in", "vsock.reassembled_in", extra=["-2"]) == ["5", "5"]


def test_ssh_key_exchange_across_packets(tshark):
    # After both version banners, the client's KEXINIT in four packets.
    capture = split_capture(tshark, "ssh_split.pcap", "real/ssh.pcap", 7, 4, preamble=(3, 5))
    assert tshark.frames(capture, "ssh.message_code == 20", extra=["-2"]) == [8]
    assert tshark.column(capture, "vsock.segment.count", "frame.number == 8", extra=["-2"]) == ["4"]


def test_seqpacket_messages_are_reassembled_up_to_eom(tshark):
    capture = tshark.capture("real/seqpacket.pcap")
    conn = truth("real/seqpacket")["connections"][0]
    src_port = conn["src"]["port"]
    rows = tshark.fields(capture, ["vsock.src_port", "vsock.seqpacket.msg_len"], "vsock.seqpacket.msg_len")
    sent = [int(length) for port, length in rows if int(port) == src_port]
    answered = [int(length) for port, length in rows if int(port) != src_port]
    assert sent == conn["src_to_dst"]["messages"]
    assert answered == conn["dst_to_src"]["messages"]
    # Messages longer than one packet come out whole.
    lengths = tshark.column(capture, "vsock.reassembled.length", "vsock.reassembled.length", extra=["-2"])
    assert sorted(int(n) for n in lengths) == sorted(n for n in sent + answered if n > 65536)


def test_message_cut_by_rst(tshark):
    capture = tshark.capture("synthetic/analysis_seqpacket_cut.pcap")
    assert tshark.column(capture, "vsock.seqpacket.msg_len", "vsock.seqpacket.msg_len") == ["150"]
    assert tshark.frames(capture, "vsock.seqpacket.message_cut") == [6]
    assert tshark.frames(capture, "vsock.seqpacket.message_cut", extra=["-2"]) == [6]


def test_well_known_ports_are_decode_as_entries(tshark):
    entries = {tuple(line.split("\t")) for line in tshark.text(["-G", "decodes"]).splitlines()
               if line.startswith("vsock.port")}
    assert entries == {("vsock.port", "22", "ssh"), ("vsock.port", "1024", "ttrpc"), ("vsock.port", "8888", "http2"),
                       ("vsock.port", "8889", "http2"), ("vsock.port", "8890", "http2"), ("vsock.port", "9001", "http2"),
                       ("vsock.port", "1025", "kata.log"), ("vsock.port", "1026", "kata.console"),
                       ("vsock.port", "8000", "nitro.vsock_proxy"), ("vsock.port", "9000", "nitro.heartbeat")}


def test_heuristics_adopted_from_tcp(tshark):
    # Table, protocol, enabled; 4.4 and later add two more columns (short and display name).
    lines = {tuple(line.split("\t")[:3]) for line in tshark.text(["-G", "heuristic-decodes"]).splitlines()}
    assert {("vsock", "tls", "T"), ("vsock", "http", "T")} <= lines


def test_a_pdu_starting_inside_reassembled_data_is_carried_over(tshark):
    """HTTP asked for one more segment and got the end of response 200 and the
    start of response 404: the 404's first bytes open a new reassembly that the
    next segment completes, on one pass and on two."""
    capture = tshark.capture("synthetic/reassembly_carry_over.pcap")
    for extra in ([], ["-2"]):
        assert tshark.fields(capture, ["frame.number", "http.response.code", "http.content_length"],
                             "http.response", extra=extra) == [["4", "200", "2"], ["5", "404", "4"]]
        # The bodies as data (http.file_data is a string in 4.0, bytes from 4.2 on).
        assert tshark.fields(capture, ["frame.number", "data.data"], "http.response", extra=extra) == [
            ["4", b"ok".hex()], ["5", b"nope".hex()]]
        assert tshark.fields(capture, ["vsock.segment", "vsock.reassembled.length"], "frame.number == 5",
                             extra=extra) == [["4|5", "49"]]
        assert tshark.frames(capture, "_ws.malformed || _ws.expert.severity >= warning", extra=extra) == []
    assert tshark.fields(capture, ["frame.number", "vsock.reassembled_in"], "vsock.reassembled_in",
                         extra=["-2"]) == [["3", "4"], ["4", "5"]]
