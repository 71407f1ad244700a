"""Connection analysis: streams, offsets, state, links, credit flow control."""

import json
import os
import sys

import pytest

from vsocktest import CAPTURES, REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import gen_test_captures as gen  # noqa: E402  (the project's capture builder)

ANALYSIS_FIELDS = ["vsock.stream", "vsock.state", "vsock.seq", "vsock.nxtseq", "vsock.analysis.peer_free",
                   "vsock.analysis.bytes_in_flight"]
LINK_FIELDS = ["vsock.response_in", "vsock.response_to", "vsock.rst_in", "vsock.shutdown_frame",
               "vsock.credit_update_in", "vsock.credit_request_frame"]

# vsock.state values, as the plugin names them (the names are the API, the numbers its own).
STATE_NAMES = ["Tracked from mid-connection", "Connecting", "Established", "Refused",
               "Half-closed (connecting side done sending)", "Half-closed (listening side done sending)",
               "Closing", "Closed", "Reset"]
UNKNOWN, CONNECTING, ESTABLISHED, REFUSED, HALF_CLIENT, HALF_SERVER, CLOSING, CLOSED, RESET = STATE_NAMES


@pytest.fixture(autouse=True, scope="module")
def state_values(tshark):
    """Replaces the state names above by the plugin's numbers for them."""
    values = tshark.field_values("vsock.state")
    assert set(values) == set(STATE_NAMES)
    globals().update({const: values[name] for const, name in zip(
        ["UNKNOWN", "CONNECTING", "ESTABLISHED", "REFUSED", "HALF_CLIENT", "HALF_SERVER", "CLOSING", "CLOSED",
         "RESET"], STATE_NAMES)})


def synthetic(name):
    return f"synthetic/analysis_{name}.pcap"


def rows(tshark, name, fields, two_pass=True):
    extra = ["-2"] if two_pass else []
    return [tuple(row) for row in tshark.fields(tshark.capture(synthetic(name)), fields, extra=extra)]


def experts(tshark, name, expert):
    return tshark.frames(tshark.capture(synthetic(name)), expert, extra=["-2"])


def test_refused_connection(tshark):
    assert rows(tshark, "refused", ["vsock.stream", "vsock.state"] + LINK_FIELDS[:2]) == [
        ("0", CONNECTING, "2", ""),
        ("0", REFUSED, "", "1"),
    ]
    assert experts(tshark, "refused", "vsock.analysis.refused") == [2]
    assert tshark.column(tshark.capture(synthetic("refused")), "_ws.col.Info")[1] == "[Refused] 1234 → 40000 [RST]"
    (connect_time,) = tshark.column(tshark.capture(synthetic("refused")), "vsock.connect_time", "vsock.response_to")
    assert float(connect_time) == pytest.approx(0.001)


def test_reset_mid_transfer(tshark):
    assert rows(tshark, "reset", ANALYSIS_FIELDS) == [
        ("0", CONNECTING, "", "", "", ""),
        ("0", ESTABLISHED, "", "", "", ""),
        ("0", ESTABLISHED, "0", "1000", "262144", "1000"),
        ("0", ESTABLISHED, "0", "500", "262144", "500"),
        ("0", RESET, "", "", "", ""),
        ("0", RESET, "1000", "1010", "262144", "10"),
    ]
    assert experts(tshark, "reset", "vsock.analysis.reset") == [5]
    assert experts(tshark, "reset", "vsock.analysis.data_after_rst") == [6]


def test_half_close_with_data_flowing(tshark):
    assert rows(tshark, "halfclose", ["vsock.state", "vsock.seq", "vsock.nxtseq"] + LINK_FIELDS[2:4]) == [
        (CONNECTING, "", "", "", ""),
        (ESTABLISHED, "", "", "", ""),
        (ESTABLISHED, "0", "3", "", ""),
        (HALF_CLIENT, "", "", "", ""),
        (HALF_CLIENT, "0", "100", "", ""),
        (HALF_CLIENT, "100", "150", "", ""),
        (HALF_CLIENT, "3", "8", "", ""),
        (CLOSING, "", "", "9", ""),
        (CLOSED, "", "", "", "8"),
    ]
    # Data from the listening side after the client's half-close is fine; the
    # client's own data after its SHUTDOWN (send) is not.
    assert experts(tshark, "halfclose", "vsock.analysis.data_after_shutdown") == [7]
    assert experts(tshark, "halfclose", "_ws.expert") == [7]


def test_credit_exhausted_reopened_and_violated(tshark):
    assert rows(tshark, "credit", ["vsock.analysis.peer_free", "vsock.analysis.bytes_in_flight"]
                + LINK_FIELDS[4:]) == [
        ("", "", "", ""),
        ("", "", "", ""),
        ("4096", "2048", "", ""),
        ("2048", "4096", "", ""),
        ("", "", "", ""),
        ("2048", "3072", "", ""),
        ("1024", "5120", "", ""),
        ("", "", "9", ""),
        ("", "", "", "8"),
        ("", "", "", ""),
    ]
    assert experts(tshark, "credit", "vsock.analysis.credit_exhausted") == [4, 7]
    assert experts(tshark, "credit", "vsock.analysis.credit_reopened") == [5, 9]
    assert experts(tshark, "credit", "vsock.analysis.credit_violation") == [7]
    assert experts(tshark, "credit", "vsock.analysis.fwd_cnt_backwards") == [10]
    capture = tshark.capture(synthetic("credit"))
    assert tshark.column(capture, "_ws.expert.message", "frame.number == 7")[0].split("|")[0] == \
        "RW of 2048 bytes exceeds the sender's credit of 1024 bytes"
    assert tshark.column(capture, "_ws.col.Info", "frame.number == 7") == \
        ["[Credit violation] [Credit exhausted] 40000 → 1234 [RW] Len=2048"]


def test_stream_reused_after_close(tshark):
    assert rows(tshark, "reuse", ["vsock.stream", "vsock.state"]) == [
        ("0", CONNECTING), ("0", ESTABLISHED), ("0", CLOSING), ("0", CLOSED),
        ("1", CONNECTING), ("1", ESTABLISHED), ("1", ESTABLISHED),
    ]
    assert experts(tshark, "reuse", "vsock.analysis.reused_ports") == [5]
    assert tshark.frames(tshark.capture(synthetic("reuse")), "vsock.stream eq 1") == [5, 6, 7]


def test_capture_starting_mid_connection(tshark):
    assert rows(tshark, "midstream", ANALYSIS_FIELDS) == [
        ("0", UNKNOWN, "0", "100", "", ""),
        ("0", UNKNOWN, "", "", "", ""),
        ("0", UNKNOWN, "100", "1100", "65536", "1000"),
        ("0", UNKNOWN, "0", "10", "262144", "10"),
    ]
    # A note, not an error, and only once.
    assert experts(tshark, "midstream", "vsock.analysis.unknown_connection") == [1]
    assert experts(tshark, "midstream", "_ws.expert.severity >= 6291456") == []


def test_data_before_response_and_request_never_answered(tshark):
    assert experts(tshark, "early_data", "vsock.analysis.data_before_connect") == [2]
    # Only a second pass knows that the REQUEST in frame 4 was never answered.
    assert experts(tshark, "early_data", "vsock.analysis.no_response") == [4]
    assert tshark.frames(tshark.capture(synthetic("early_data")), "vsock.analysis.no_response") == []


def test_thousands_of_interleaved_streams(tshark):
    capture = tshark.capture(synthetic("many_streams"))
    result = tshark.fields(capture, ["vsock.src_port", "vsock.dst_port", "vsock.stream", "vsock.state"])
    count = 1500
    assert len(result) == 5 * count
    for index, (src, dst, stream, state) in enumerate(result):
        phase, n = divmod(index, count)
        assert stream == str(n)
        assert 10000 + n in (int(src), int(dst))
        assert state == [CONNECTING, ESTABLISHED, ESTABLISHED, CLOSING, CLOSED][phase]
    assert tshark.frames(capture, "_ws.expert") == []


@pytest.mark.parametrize("name", ["credit", "halfclose", "reset", "midstream", "reuse", "many_streams"])
def test_one_pass_and_two_pass_agree(tshark, name):
    """Everything but the forward links (known only once later packets were seen)."""
    fields = ANALYSIS_FIELDS + ["vsock.response_to", "vsock.shutdown_frame", "vsock.credit_request_frame",
                                "vsock.time_relative", "vsock.time_delta", "_ws.col.Info"]
    assert rows(tshark, name, fields, two_pass=False) == rows(tshark, name, fields, two_pass=True)


REAL = ["real/stream_basic", "real/refused", "real/credit", "real/multi_halfclose", "real/seqpacket",
        "real/http", "real/tls", "real/ssh", "real/reset", "real/unread_close", "real/vhost", "real/vhost_guest",
        "reference/stream_basic", "reference/stream_multi", "reference/http_over_vsock", "reference/seqpacket"]


@pytest.mark.parametrize("name", REAL)
def test_real_captures_streams_and_outcomes(tshark, name):
    with open(os.path.join(CAPTURES, name + ".json")) as f:
        truth = json.load(f)
    capture = tshark.capture(name + ".pcap")
    result = tshark.fields(capture, ["vsock.stream", "vsock.src_port", "vsock.dst_port", "vsock.state"])
    streams = {}
    for stream, src, dst, state in result:
        streams.setdefault(int(stream), {"ports": {int(src), int(dst)}, "states": []})["states"].append(state)
    assert sorted(streams) == list(range(len(truth["connections"])))
    for conn in truth["connections"]:
        ports = {conn["src"]["port"], conn["dst"]["port"]}
        (stream,) = [s for s in streams.values() if s["ports"] == ports]
        if conn["result"] == "refused":
            assert stream["states"][-1] == REFUSED
        else:
            assert ESTABLISHED in stream["states"]
            # Linux closes with SHUTDOWN and RST, even for an abortive close.
            assert stream["states"][-1] in (CLOSED, CLOSING)
    # A real kernel never exceeds credit, nor moves fwd_cnt backwards.
    assert tshark.frames(capture, "vsock.analysis.credit_violation || vsock.analysis.fwd_cnt_backwards"
                                  " || vsock.analysis.data_after_rst || vsock.analysis.data_after_shutdown") == []


def test_real_credit_capture_stalls_and_resumes(tshark):
    capture = tshark.capture("real/credit.pcap")
    exhausted = tshark.frames(capture, "vsock.analysis.credit_exhausted")
    reopened = tshark.frames(capture, "vsock.analysis.credit_reopened")
    assert len(exhausted) > 10
    # Every stall is followed by the CREDIT_UPDATE that reopens it, before the next stall.
    assert len(reopened) == len(exhausted)
    assert all(e < r for e, r in zip(exhausted, reopened))
    assert all(r < e for r, e in zip(reopened, exhausted[1:]))
    assert set(tshark.column(capture, "vsock.virtio.op", "vsock.analysis.credit_reopened")) == {"6"}


def test_records_of_a_long_capture(tshark):
    """70,000 RW packets: the per-packet records span 18 pages and the page
    table grows past its first size; every pass reads the right record."""
    g, h = (gen.CID_GUEST, 40000), (gen.CID_HOST, 1234)
    frames = [gen.virtio_frame(g, h, gen.OP_REQUEST), gen.virtio_frame(h, g, gen.OP_RESPONSE)]
    frames += [gen.virtio_frame(g, h, gen.OP_RW, payload=b"x") for _ in range(70000)]
    capture = tshark.scratch_file("long.pcap", gen.pcap_bytes(frames))
    last = " || ".join(f"frame.number == {n}" for n in (3, 4098, 4099, 65538, 70002))
    for extra in ([], ["-2"]):
        assert tshark.fields(capture, ["frame.number", "vsock.stream", "vsock.seq", "vsock.nxtseq",
                                       "vsock.analysis.bytes_in_flight"], last, extra=extra) == [
            ["3", "0", "0", "1", "1"], ["4098", "0", "4095", "4096", "4096"],
            ["4099", "0", "4096", "4097", "4097"], ["65538", "0", "65535", "65536", "65536"],
            ["70002", "0", "69999", "70000", "70000"]]
    assert tshark.frames(capture, "vsock.analysis.credit_violation || vsock.analysis.unknown_connection",
                         extra=["-2"]) == []


def test_loopback_answers_from_cid_1_pair_with_the_request_to_cid_2(tshark):
    """vsock_loopback carries a connection to CID 2 (a host with vhost_vsock, no
    guest transport) and stamps CID 1 on the answers: 1:x -> 2:P, then 1:P -> 1:x.
    One stream, established, closed; a note on the first answer, no warning."""
    assert rows(tshark, "loopback_cid2", ["vsock.stream", "vsock.state", "vsock.seq", "vsock.response_to",
                                          "vsock.rst_in", "vsock.shutdown_frame"]) == [
        ("0", CONNECTING, "", "", "", ""), ("0", ESTABLISHED, "", "1", "", ""), ("0", ESTABLISHED, "0", "", "", ""),
        ("0", ESTABLISHED, "0", "", "", ""), ("0", CLOSING, "", "", "6", ""), ("0", CLOSED, "", "", "", "5")]
    capture = tshark.capture(synthetic("loopback_cid2"))
    for extra in ([], ["-2"]):
        assert tshark.vsock_experts(capture, extra=extra) == {2: {"vsock.loopback.paired"}}
    assert tshark.column(capture, "_ws.expert.message", "vsock.loopback.paired") == [
        "Answer from CID 1 (vsock_loopback) paired with the connection from 1:3000000001 to 2:5200"]
    out = tshark.text(["-r", capture, "-q", "-z", "follow,vsock,ascii,0", "-z", "conv,vsock"])
    assert "Node 0: 1:3000000001\nNode 1: 2:5200\n6\nhello\n\n\t4\nhi\r\n" in out
    assert len([line for line in out.splitlines() if "<->" in line]) == 1


def test_connection_without_transport_header(tshark):
    """vsockmon transport 1 ("no info", no virtio header), as hybrid-vsock
    captures write: CONNECT, its answer, payloads, DISCONNECTs make one stream
    with offsets, reassembly (the HTTP response spans three payloads) and
    Follow; nothing needs credit, so no analysis and no expert info."""
    capture = tshark.capture("synthetic/notrans_http.pcap")
    for extra in ([], ["-2"]):
        assert tshark.fields(capture, ["frame.number", "vsock.stream", "vsock.seq", "vsock.nxtseq", "vsock.state",
                                       "http.response.code"], extra=extra) == [
            ["1", "0", "", "", "", ""], ["2", "0", "", "", "", ""], ["3", "0", "0", "36", "", ""],
            ["4", "0", "0", "20", "", ""], ["5", "0", "20", "45", "", ""], ["6", "0", "45", "51", "", "200"],
            ["7", "0", "", "", "", ""], ["8", "0", "", "", "", ""]]
        assert tshark.vsock_experts(capture, extra=extra) == {}
    assert tshark.fields(capture, ["frame.number", "vsock.reassembled_in"], "vsock.reassembled_in",
                         extra=["-2"]) == [["4", "6"], ["5", "6"]]
    out = tshark.text(["-r", capture, "-q", "-z", "follow,vsock,raw,0"])
    assert "Node 0: 2:1073741824\nNode 1: 3:8080\n" in out
