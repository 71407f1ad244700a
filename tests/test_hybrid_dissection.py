"""Captures without a transport header (vsockhybriddump's, of hybrid vsock): the
dissector tracks their connections from the vsockmon header alone."""

import glob
import hashlib
import os

import pytest

from vsocktest import CAPTURES, ground_truth, relative

EXTCAP = sorted(glob.glob(os.path.join(CAPTURES, "extcap", "*.pcap")))


def endpoint(side):
    return (side["cid"], side["port"])


def connect_streams(tshark, capture):
    """The stream each opening CONNECT started: {(src, dst): stream}."""
    streams = {}
    for stream, src_cid, src_port, dst_cid, dst_port in tshark.fields(
            capture, ["vsock.stream", "vsock.src_cid", "vsock.src_port", "vsock.dst_cid", "vsock.dst_port"],
            "vsock.op == 1"):
        key = ((int(src_cid), int(src_port)), (int(dst_cid), int(dst_port)))
        streams.setdefault(key, int(stream))
    return streams


def follow_raw(tshark, capture, stream):
    lines = tshark.text(["-r", capture, "-q", "-z", f"follow,vsock,raw,{stream}"]).splitlines()
    start = lines.index(f"Filter: vsock.stream eq {stream}")
    nodes = [lines[start + 1].split(": ", 1)[1], lines[start + 2].split(": ", 1)[1]]
    sent = [bytearray(), bytearray()]
    for line in lines[start + 3:]:
        if line.startswith("="):
            break
        if line.startswith("\t"):
            sent[1] += bytes.fromhex(line[1:])
        elif line:
            sent[0] += bytes.fromhex(line)
    return nodes, sent


@pytest.mark.parametrize("pcap", EXTCAP, ids=relative)
def test_follow_each_connection_with_the_connecting_side_as_node_0(tshark, pcap):
    """Every connection of the capture is one stream whose Follow output is what
    each side sent, byte for byte, with the side that connected as node 0."""
    capture = tshark.capture(relative(pcap))
    streams = connect_streams(tshark, capture)
    for conn in ground_truth(pcap)["connections"]:
        host, guest = endpoint(conn["host"]), endpoint(conn["guest"])
        first, second = (host, guest) if conn["initiator"] == "host" else (guest, host)
        stream = streams[(first, second)]
        nodes, sent = follow_raw(tshark, capture, stream)
        up = conn["host_to_guest"] if conn["initiator"] == "host" else conn["guest_to_host"]
        down = conn["guest_to_host"] if conn["initiator"] == "host" else conn["host_to_guest"]
        if up["bytes"] or down["bytes"]:
            assert nodes == [f"{first[0]}:{first[1]}", f"{second[0]}:{second[1]}"], conn["name"]
        for data, truth in ((sent[0], up), (sent[1], down)):
            assert len(data) == truth["bytes"], conn["name"]
            assert hashlib.sha256(bytes(data)).hexdigest() == truth["sha256"], conn["name"]


@pytest.mark.parametrize("pcap", EXTCAP, ids=relative)
def test_no_credit_analysis_and_no_false_expert_info(tshark, pcap):
    """Without a virtio header there is no credit or state to analyse: no
    vsock.state, no analysis subtree, no expert info of the plugin."""
    capture = tshark.capture(relative(pcap))
    for extra in ([], ["-2"]):
        assert tshark.vsock_experts(capture, extra=extra) == {}
        assert tshark.frames(capture, "vsock.state || vsock.analysis", extra=extra) == []
    assert tshark.frames(capture, "vsock && !vsock.stream") == []


def test_http_over_hybrid_vsock_is_reassembled(tshark):
    """extcap/http.pcap: the 100,000-byte response spans several payloads and is
    one HTTP message; the bodies exported are what the guest's server sent."""
    capture = tshark.capture("extcap/http.pcap")
    for extra in ([], ["-2"]):
        assert tshark.fields(capture, ["frame.number", "vsock.stream", "http.request.method", "http.response.code",
                                       "http.content_length"], "http", extra=extra) == [
            ["3", "0", "GET", "", ""], ["5", "0", "", "200", "100000"], ["6", "0", "POST", "", "27"],
            ["8", "0", "", "200", "26"], ["12", "1", "GET", "", ""], ["13", "1", "", "200", "23"]]
    assert "5" in tshark.column(capture, "vsock.reassembled_in", "vsock.reassembled_in", extra=["-2"])
