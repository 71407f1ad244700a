"""Real kernel captures (test-captures/real: made by tools/vm-capture; reference: the
shared set) checked against what the applications really sent (the JSON beside each)."""

from collections import defaultdict

import pytest

from vsocktest import REAL_CAPTURES as REAL, check_direction, ground_truth, relative

def stream_bytes(tshark, capture):
    """Payload bytes per (stream, sender's port), in frame order, and the stream each
    REQUEST opened: {((src cid, port), (dst cid, port)): stream}."""
    flows = defaultdict(bytearray)
    for stream, src_port, payload in tshark.fields(capture, ["vsock.stream", "vsock.src_port", "vsock.payload"],
                                                   "vsock.virtio.op == 5"):
        flows[(int(stream), int(src_port))] += bytes.fromhex(payload)
    requests = {}
    for stream, src_cid, src_port, dst_cid, dst_port in tshark.fields(
            capture, ["vsock.stream", "vsock.src_cid", "vsock.src_port", "vsock.dst_cid", "vsock.dst_port"],
            "vsock.virtio.op == 1"):
        requests[((int(src_cid), int(src_port)), (int(dst_cid), int(dst_port)))] = int(stream)
    return flows, requests


@pytest.mark.parametrize("pcap", REAL, ids=relative)
def test_payload_bytes_match_what_applications_sent(tshark, pcap):
    """Each direction of each connection, as the connection tracking finds it (a
    vsock_loopback answer from CID 1 counts for the connection to CID 2)."""
    truth = ground_truth(pcap)
    flows, requests = stream_bytes(tshark, tshark.capture(relative(pcap)))
    checked = 0
    for conn in truth["connections"]:
        src = (conn["src"]["cid"], conn["src"]["port"])
        dst = (conn["dst"]["cid"], conn["dst"]["port"])
        stream = requests[(src, dst)]
        for sender, direction in ((src, conn["src_to_dst"]), (dst, conn["dst_to_src"])):
            if direction is None or (direction.get("bytes") is None and direction.get("received_bytes") is None):
                continue
            check_direction((conn["name"], sender), bytes(flows.get((stream, sender[1]), b"")), direction)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("pcap", REAL, ids=relative)
def test_real_captures_are_clean(tshark, pcap):
    capture = tshark.capture(relative(pcap))
    # The one malformed thing a real application sent on purpose: qemu_ga's client
    # sends a line that is not JSON (qemu-ga answers it with an error).
    assert tshark.frames(capture, "_ws.malformed") == tshark.frames(capture, "qga.json.invalid")
    assert len(tshark.frames(capture, "qga.json.invalid")) == (1 if pcap.endswith("qemu_ga.pcap") else 0)
    # The only header anomaly a real kernel shows: Linux 6.1's vhost split-packet
    # capture bug. The analysis may note refused connections and credit stalls.
    allowed = {"vsock.len.mismatch", "vsock.analysis.refused", "vsock.analysis.credit_exhausted",
               "vsock.analysis.credit_reopened", "vsock.loopback.paired"}
    found = set().union(*tshark.vsock_experts(capture, extra=["-2"]).values())
    assert found <= allowed
    assert tshark.frames(capture, "vsock.len.mismatch") == tshark.frames(capture, "vsock.payload_excess")


def test_refused_connections_are_request_then_rst(tshark):
    capture = tshark.capture("real/refused.pcap")
    ops = tshark.column(capture, "vsock.virtio.op")
    assert ops.count("1") == 3 and ops.count("3") == 3 and set(ops) == {"1", "3"}


def test_loopback_connection_to_cid_2_is_one_stream(tshark):
    """real/loopback_cid2.pcap (vhost_vsock loaded, no guest transport, connect() to
    CID 2): the server's packets come from CID 1, yet they are one connection with
    the client's, opened, established and closed, with only the pairing's note."""
    capture = tshark.capture("real/loopback_cid2.pcap")
    conn = ground_truth(tshark.capture("real/loopback_cid2.pcap"))["connections"][0]
    assert (conn["dst"]["cid"], conn["dst"]["port"]) == (2, 9002)
    rows = tshark.fields(capture, ["vsock.stream", "vsock.src_cid", "vsock.dst_cid"], extra=["-2"])
    assert {row[0] for row in rows} == {"0"}
    assert {(row[1], row[2]) for row in rows} == {("1", "2"), ("1", "1")}
    assert tshark.vsock_experts(capture, extra=["-2"]) == {2: {"vsock.loopback.paired"}}
    assert tshark.column(capture, "vsock.response_to", "vsock.virtio.op == 2", extra=["-2"]) == ["1"]
