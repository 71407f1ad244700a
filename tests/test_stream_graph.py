"""tools/vsock-stream-graph: the series it draws for each direction of a stream,
checked against tshark's fields of the same packets and against the plugin's own
credit analysis; the pictures it writes (PNG pixels, SVG elements); and its
refusal of bad input, message and exit status."""

import json
import os
import shutil
import stat
import struct
import xml.etree.ElementTree as ET

import pytest

from vsocktest import CAPTURES, REAL_CAPTURES as REAL, ground_truth, relative
from vsockprofile import STREAM_GRAPH, environment, nobody_dir, run

PROG = "vsock-stream-graph: error: "


@pytest.fixture(scope="module")
def graph(tshark):
    """Runs the tool as uid 65534 (tshark then loads the plugin under test) from a
    copy uid 65534 can read; returns (exit status, stdout, stderr)."""
    folder = nobody_dir(tshark.scratch)
    tool = os.path.join(folder, "vsock-stream-graph")
    shutil.copy(STREAM_GRAPH, tool)
    os.chmod(tool, 0o755)
    mpl = nobody_dir(tshark.scratch)

    def call(args, plugin=True, **env):
        return run([tool] + [str(a) for a in args],
                   environment(tshark, plugin, MPLCONFIGDIR=mpl, **env))
    return call


def out_file(tshark, name):
    return os.path.join(nobody_dir(tshark.scratch), name)


def dump(tshark, graph, capture, stream, extra=()):
    """The series --dump writes (without -o: no picture, the same series)."""
    path = out_file(tshark, "series.json")
    rc, out, err = graph([capture, "--stream", stream, "--dump", path] + list(extra))
    assert rc == 0 and err == "", err
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def stream_packets(tshark, capture, stream):
    """The stream's packets as tshark reports their fields."""
    names = ["frame.number", "frame.time_relative", "vsock.src_cid", "vsock.src_port", "vsock.dst_cid",
             "vsock.dst_port", "vsock.virtio.op", "vsock.seq", "vsock.nxtseq", "vsock.virtio.buf_alloc",
             "vsock.virtio.fwd_cnt", "vsock.analysis.peer_free", "vsock.analysis.bytes_in_flight", "vsock.len"]
    rows = tshark.fields(capture, names, f"vsock.stream == {stream}", occurrence="f")
    packets = []
    for row in rows:
        p = dict(zip(names, row))
        packets.append({
            "frame": int(p["frame.number"]), "time": float(p["frame.time_relative"]),
            "src": f'{p["vsock.src_cid"]}:{p["vsock.src_port"]}', "dst": f'{p["vsock.dst_cid"]}:{p["vsock.dst_port"]}',
            "op": int(p["vsock.virtio.op"]),
            **{k: int(p["vsock." + k]) if p["vsock." + k] else None for k in ("seq", "nxtseq", "len")},
            "buf_alloc": int(p["vsock.virtio.buf_alloc"]), "fwd_cnt": int(p["vsock.virtio.fwd_cnt"]),
            "peer_free": int(p["vsock.analysis.peer_free"]) if p["vsock.analysis.peer_free"] else None,
            "in_flight": int(p["vsock.analysis.bytes_in_flight"]) if p["vsock.analysis.bytes_in_flight"] else None,
        })
    return packets


def held(points, frame):
    """The value a step series holds when `frame` is sent: its last point before it."""
    before = [pt["value"] for pt in points if pt["frame"] < frame]
    return before[-1] if before else None


def from_side(p, side, side_a):
    """Whether a packet is the given side's: side A's packets come from its CID and
    port, all others are side B's (a vsock_loopback answer to CID 2 comes from CID 1)."""
    return (p["src"] == side_a) == (side == side_a)


def check_against_plugin(direction, packets, side_a):
    """The graph's credit limit and consumed lines, at each RW of the direction,
    agree with the plugin's vsock.analysis.peer_free and bytes_in_flight."""
    checked = 0
    for p in packets:
        if not from_side(p, direction["from"], side_a) or p["op"] != 5 or p["peer_free"] is None:
            continue
        limit = held(direction["limit"], p["frame"])
        consumed = held(direction["consumed"], p["frame"])
        assert limit == p["seq"] + p["peer_free"], p
        assert p["nxtseq"] - consumed == p["in_flight"], p
        checked += 1
    return checked


def test_credit_capture_series(tshark, graph):
    """credit.pcap, stream 0: bytes sent, credit limit (fwd_cnt + buf_alloc), consumed,
    and every marker, point by point as tshark's fields give them."""
    capture = tshark.capture("real/credit.pcap")
    truth = ground_truth(os.path.join(CAPTURES, "real/credit.pcap"))["connections"][0]
    client = f'{truth["src"]["cid"]}:{truth["src"]["port"]}'
    listener = f'{truth["dst"]["cid"]}:{truth["dst"]["port"]}'
    data = dump(tshark, graph, capture, 0)
    packets = stream_packets(tshark, capture, 0)
    assert len(packets) == 255 and data["start_seen"] is True
    up, down = data["directions"]
    assert (up["from"], up["to"], down["from"], down["to"]) == (client, listener, listener, client)

    for d, sender, receiver in ((up, client, listener), (down, listener, client)):
        assert d["sent"] == [{"frame": p["frame"], "time": p["time"], "seq": p["seq"], "nxtseq": p["nxtseq"]}
                             for p in packets if p["src"] == sender and p["op"] == 5]
        adverts = [p for p in packets if p["src"] == receiver and p["op"] != 3]
        assert d["limit"] == [{"frame": p["frame"], "time": p["time"], "value": p["fwd_cnt"] + p["buf_alloc"]}
                              for p in adverts]
        assert d["consumed"] == [{"frame": p["frame"], "time": p["time"], "value": p["fwd_cnt"]} for p in adverts]
    assert up["sent"][-1]["nxtseq"] == truth["src_to_dst"]["bytes"] == 1048576
    assert down["sent"][-1]["nxtseq"] == truth["dst_to_src"]["bytes"] == 12
    assert {pt["value"] - c["value"] for pt, c in zip(up["limit"], up["consumed"])} == {65536}

    def frames(expression):
        return tshark.frames(capture, f"vsock.stream == 0 && {expression}")

    marks = {name: [m["frame"] for m in up["markers"][name]] for name in up["markers"]}
    assert marks["credit_exhausted"] == frames("vsock.analysis.credit_exhausted") != []
    assert marks["credit_reopened"] == frames("vsock.analysis.credit_reopened") != []
    assert marks["credit_violation"] == frames("vsock.analysis.credit_violation") == []
    assert marks["credit_request"] == frames("vsock.virtio.op == 7") == []
    assert marks["shutdown"] == frames("vsock.virtio.op == 4")
    assert marks["rst"] == frames("vsock.virtio.op == 3")
    by_frame = {p["frame"]: p for p in packets}
    for m in up["markers"]["credit_exhausted"]:
        assert m["by"] == "sender" and m["y"] == by_frame[m["frame"]]["nxtseq"]
    for m in up["markers"]["credit_reopened"]:
        p = by_frame[m["frame"]]
        assert m["by"] == "receiver" and m["y"] == p["fwd_cnt"] + p["buf_alloc"]
    # A stall: the RW that exhausts the credit ends exactly at the limit.
    for m in up["markers"]["credit_exhausted"]:
        assert m["y"] == held(up["limit"], m["frame"] + 1)
    assert check_against_plugin(up, packets, client) == len(up["sent"]) == len(frames(f"vsock.virtio.op == 5 && vsock.src_port == {truth['src']['port']}"))


def payload_streams(tshark, capture):
    """Streams with payload, largest first."""
    totals = {}
    for stream, length in tshark.fields(capture, ["vsock.stream", "vsock.len"], "vsock.len > 0"):
        totals[int(stream)] = totals.get(int(stream), 0) + int(length)
    return sorted(totals, key=lambda s: -totals[s])


@pytest.mark.parametrize("pcap", REAL, ids=relative)
def test_real_captures_agree_with_the_plugin(tshark, graph, pcap):
    """The largest stream of every real capture: per direction, the bytes drawn are
    the payload bytes sent, and the lines agree with the plugin's credit analysis."""
    capture = tshark.capture(relative(pcap))
    streams = payload_streams(tshark, capture)
    stream = streams[0] if streams else 0
    data = dump(tshark, graph, capture, stream)
    packets = stream_packets(tshark, capture, stream)
    checked = 0
    side_a = data["directions"][0]["from"]
    for d in data["directions"]:
        sent = [p for p in packets if from_side(p, d["from"], side_a) and p["op"] == 5]
        assert sum(p["len"] for p in sent) == (d["sent"][-1]["nxtseq"] if d["sent"] else 0)
        checked += check_against_plugin(d, packets, side_a)
    if streams:
        assert checked > 0
    else:   # refused.pcap: every connection was refused, nothing to send
        assert {c["result"] for c in ground_truth(pcap)["connections"]} == {"refused"}
        assert [d["sent"] for d in data["directions"]] == [[], []]


def test_capture_started_mid_connection(tshark, graph):
    """analysis_midstream.pcap: no REQUEST, so the consumed line starts where the
    plugin starts counting credit (nothing unread at the first fwd_cnt seen)."""
    capture = tshark.capture("synthetic/analysis_midstream.pcap")
    data = dump(tshark, graph, capture, 0)
    packets = stream_packets(tshark, capture, 0)
    assert data["start_seen"] is False
    first, second = data["directions"]
    assert first["from"] == packets[0]["src"]
    # Frame 1 sent 100 bytes before the peer's first fwd_cnt (9000, frame 2).
    assert first["consumed"][0] == {"frame": 2, "time": packets[1]["time"], "value": 100}
    assert first["limit"][0]["value"] == 100 + 65536
    assert check_against_plugin(first, packets, first["from"]) == 1
    assert check_against_plugin(second, packets, first["from"]) == 1


def colour_pixels(image, colour):
    """How many pixels of an RGBA image (floats 0..1) have exactly this #rrggbb colour."""
    import numpy
    rgb = numpy.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    pixels = numpy.rint(image[:, :, :3] * 255).astype(int)
    return (pixels == rgb).all(axis=2)


def test_png(tshark, graph):
    """A PNG with both panels: bytes sent, credit limit and exhausted markers in the
    upper one (the stalled direction), the other side's credit limit in the lower."""
    from matplotlib import image
    png = out_file(tshark, "credit.png")
    rc, out, err = graph([tshark.capture("real/credit.pcap"), "--stream", 0, "-o", png, "--time", "0:0.1"])
    assert rc == 0 and out == "" and err == ""
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    picture = image.imread(png)
    assert picture.shape[:2] == (840, 1100)
    upper, lower = picture[:420], picture[420:]
    for colour in ("#1f3b73", "#2ca02c", "#d62728"):      # sent, limit, credit exhausted
        assert colour_pixels(upper, colour).sum() > 200, colour
    assert colour_pixels(lower, "#2ca02c").sum() > 200
    assert colour_pixels(lower, "#d62728").sum() < 20       # the listener's 12 bytes never stall


SVG = "{http://www.w3.org/2000/svg}"


def test_svg(tshark, graph):
    """OUT.svg is SVG: one group per series and marker kind, one marker per packet."""
    capture = tshark.capture("real/credit.pcap")
    svg = out_file(tshark, "credit.svg")
    rc, _, err = graph([capture, "-s", 0, "-o", svg])
    assert rc == 0 and err == ""
    root = ET.parse(svg).getroot()
    assert root.tag == SVG + "svg"
    groups = {g.get("id"): g for g in root.iter(SVG + "g") if g.get("id")}

    def markers(gid):
        return len(list(groups[gid].iter(SVG + "use")))

    def frames(expression):
        return tshark.frames(capture, f"vsock.stream == 0 && {expression}")

    for gid in ("sent-0", "limit-0", "consumed-0", "sent-1", "limit-1", "consumed-1"):
        assert groups[gid].find(f".//{SVG}path") is not None, gid
    assert markers("credit_exhausted-sender-0") == len(frames("vsock.analysis.credit_exhausted")) == 106
    assert markers("credit_reopened-receiver-0") == len(frames("vsock.analysis.credit_reopened"))
    client = "vsock.src_port == 3376184825"
    assert markers("rst-sender-0") == len(frames(f"vsock.virtio.op == 3 && {client}")) == 2
    assert markers("shutdown-sender-0") + markers("shutdown-receiver-0") == len(frames("vsock.virtio.op == 4"))
    assert "credit_violation-sender-0" not in groups


def write_pcap(path, linktype, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)
    os.chmod(path, 0o644)
    return path


def vsockmon(op, payload=b"", transport=1):
    """A vsockmon header (transport 1: no transport header) and a payload."""
    return struct.pack("<QQIIHHHH", 3, 2, 50000, 1234, op, transport, 0, 0) + payload


def failure(graph, args, **kwargs):
    rc, out, err = graph(args, **kwargs)
    assert out == ""
    return rc, err


def test_not_a_capture(tshark, graph):
    path = tshark.scratch_file("notes.txt", "this is not a capture\n")
    rc, err = failure(graph, [path, "--stream", 0, "-o", out_file(tshark, "x.png")])
    assert rc == 1
    assert err.startswith(f"{PROG}{path}: tshark cannot read it: ") and "capture file" in err


def test_missing_file(tshark, graph):
    path = os.path.join(tshark.scratch, "nothing-here.pcap")
    rc, err = failure(graph, [path, "--stream", 0, "-o", out_file(tshark, "x.png")])
    assert (rc, err) == (1, f"{PROG}{path}: no such file\n")


def test_capture_without_vsock(tshark, graph):
    path = write_pcap(os.path.join(tshark.scratch, "ethernet.pcap"), 1, [bytes(60)])
    rc, err = failure(graph, [path, "--stream", 0, "-o", out_file(tshark, "x.png")])
    assert (rc, err) == (1, f"{PROG}{path}: no vsock packets in this capture\n")


def test_stream_not_there(tshark, graph):
    capture = tshark.capture("real/credit.pcap")
    png = out_file(tshark, "x.png")
    rc, err = failure(graph, [capture, "--stream", 7, "-o", png])
    assert (rc, err) == (1, f"{PROG}{capture}: no stream 7 (the capture has streams 0 to 0)\n")
    assert not os.path.exists(png)


def test_transport_no_info(tshark, graph):
    """vsockmon transport 1 (hybrid vsock): a stream, but no virtio header, hence no credit."""
    path = write_pcap(os.path.join(tshark.scratch, "no_info.pcap"), 271,
                      [vsockmon(1), vsockmon(4, b"hello"), vsockmon(2)])
    assert tshark.column(path, "vsock.trans") == ["1", "1", "1"]
    assert tshark.column(path, "vsock.stream") == ["0", "0", "0"]
    rc, err = failure(graph, [path, "--stream", 0, "-o", out_file(tshark, "x.png")])
    assert (rc, err) == (1, f'{PROG}{path}: stream 0 carries no credit information (transport "no info": '
                            f'no virtio header, so no buf_alloc or fwd_cnt)\n')


def test_stream_without_credit_information(tshark, graph):
    """good.pcap's stream 5 and notrans_http.pcap have no virtio header: refused, not drawn empty."""
    for capture, stream in ((tshark.capture("synthetic/good.pcap"), 5),
                            (tshark.capture("synthetic/notrans_http.pcap"), 0)):
        rc, err = failure(graph, [capture, "--stream", stream, "-o", out_file(tshark, "x.png")])
        assert (rc, err) == (1, f'{PROG}{capture}: stream {stream} carries no credit information (transport '
                                f'"no info": no virtio header, so no buf_alloc or fwd_cnt)\n')


def test_plugin_not_loaded(tshark, graph):
    rc, err = failure(graph, [tshark.capture("real/credit.pcap"), "--stream", 0, "-o", out_file(tshark, "x.png")],
                      plugin=False)
    assert (rc, err) == (1, f"{PROG}tshark does not know the fields of the wireshark-vsock plugin: the plugin "
                            f"is not loaded (`tshark -G plugins` lists vsock.so when it is)\n")


def test_output_not_writable(tshark, graph):
    png = os.path.join(tshark.root, "x.png")      # root's folder, mode 755
    rc, err = failure(graph, [tshark.capture("real/credit.pcap"), "--stream", 0, "-o", png])
    assert (rc, err) == (1, f"{PROG}{png}: cannot write it: Permission denied\n")


@pytest.mark.parametrize("args,message", [
    (["--stream", "-1"], "--stream must be 0 or more"),
    (["--stream", "x"], "argument --stream/-s: invalid int value: 'x'"),
    (["--stream", "0", "--time", "0.5:0.1"], "argument --time: '0.5:0.1' is not FROM:TO in seconds, FROM before TO"),
    (["--stream", "0", "--time", "5"], "argument --time: '5' is not FROM:TO in seconds, FROM before TO"),
])
def test_usage_errors(tshark, graph, args, message):
    rc, err = failure(graph, [tshark.capture("real/credit.pcap"), "-o", out_file(tshark, "x.png")] + args)
    assert rc == 2 and err.endswith(f"vsock-stream-graph: error: {message}\n"), err


def test_missing_output_option(tshark, graph):
    rc, err = failure(graph, [tshark.capture("real/credit.pcap"), "--stream", "0"])
    assert rc == 2 and err.endswith("error: the following arguments are required: -o/--output\n")


def test_dump_to_stdout(tshark, graph):
    capture = tshark.capture("real/refused.pcap")
    rc, out, err = graph([capture, "--stream", 1, "-o", out_file(tshark, "refused.png"), "--dump", "-"])
    assert rc == 0 and err == ""
    data = json.loads(out)
    # A refused connection: the REQUEST advertises the client's buffer; the RST nothing.
    up, down = data["directions"]
    assert up["sent"] == [] and up["limit"] == [] and [m["frame"] for m in up["markers"]["rst"]] == [4]
    assert [pt["frame"] for pt in down["limit"]] == [3] and down["limit"][0]["value"] == 262144
