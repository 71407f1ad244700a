"""Every header field, per packet, on the synthetic captures; columns; registration."""

import os
import sys

import pytest

from vsocktest import REPO

GOOD = "synthetic/good.pcap"

HEADER_FIELDS = [
    "vsock.src_cid", "vsock.dst_cid", "vsock.src_port", "vsock.dst_port", "vsock.op",
    "vsock.trans", "vsock.trans_len", "vsock.virtio.type", "vsock.virtio.op", "vsock.virtio.flags",
    "vsock.virtio.len", "vsock.virtio.buf_alloc", "vsock.virtio.fwd_cnt", "vsock.len",
]

# One row per packet of good.pcap, in HEADER_FIELDS order.
GOOD_HEADERS = [
    ("3", "2", "50000", "1234", "1", "2", "44", "1", "1", "0x00000000", "0", "262144", "0", "0"),
    ("2", "3", "1234", "50000", "1", "2", "44", "1", "2", "0x00000000", "0", "262144", "0", "0"),
    ("3", "2", "50000", "1234", "4", "2", "44", "1", "5", "0x00000000", "6", "262144", "0", "6"),
    ("2", "3", "1234", "50000", "3", "2", "44", "1", "6", "0x00000000", "0", "262144", "6", "0"),
    ("3", "2", "50000", "1234", "3", "2", "44", "1", "7", "0x00000000", "0", "262144", "0", "0"),
    ("2", "3", "1234", "50000", "4", "2", "44", "1", "5", "0x00000000", "7", "262144", "6", "7"),
    ("3", "2", "50000", "1234", "2", "2", "44", "1", "4", "0x00000001", "0", "262144", "7", "0"),
    ("3", "2", "50000", "1234", "2", "2", "44", "1", "4", "0x00000002", "0", "262144", "7", "0"),
    ("2", "3", "1234", "50000", "2", "2", "44", "1", "4", "0x00000003", "0", "262144", "6", "0"),
    ("3", "2", "50000", "1234", "2", "2", "44", "1", "3", "0x00000000", "0", "262144", "7", "0"),
    ("3", "2", "50001", "5000", "1", "2", "44", "2", "1", "0x00000000", "0", "262144", "0", "0"),
    ("2", "3", "5000", "50001", "1", "2", "44", "2", "2", "0x00000000", "0", "262144", "0", "0"),
    ("3", "2", "50001", "5000", "4", "2", "44", "2", "5", "0x00000000", "100", "262144", "0", "100"),
    ("3", "2", "50001", "5000", "4", "2", "44", "2", "5", "0x00000001", "50", "262144", "0", "50"),
    ("3", "2", "50001", "5000", "4", "2", "44", "2", "5", "0x00000003", "10", "262144", "0", "10"),
    ("3", "2", "50001", "5000", "2", "2", "44", "2", "4", "0x00000003", "0", "262144", "0", "0"),
    ("2", "3", "5000", "50001", "2", "2", "44", "2", "3", "0x00000000", "0", "262144", "160", "0"),
    ("3", "2", "50002", "6000", "4", "2", "44", "3", "5", "0x00000000", "5", "262144", "0", "5"),
    ("1", "1", "40000", "40001", "1", "2", "44", "1", "1", "0x00000000", "0", "262144", "0", "0"),
    ("0", "4294967295", "100", "200", "1", "2", "44", "1", "1", "0x00000000", "0", "262144", "0", "0"),
    ("3", "2", "50003", "1234", "1", "1", "0", "", "", "", "", "", "", "0"),
    ("3", "2", "50003", "1234", "2", "1", "8", "", "", "", "", "", "", "0"),
    ("3", "2", "50003", "1234", "0", "0", "0", "", "", "", "", "", "", "0"),
]

GOOD_INFO = [
    "50000 → 1234 [REQUEST] buf_alloc=262144 fwd_cnt=0",
    "1234 → 50000 [RESPONSE] buf_alloc=262144 fwd_cnt=0",
    "50000 → 1234 [RW] Len=6",
    "1234 → 50000 [CREDIT_UPDATE] buf_alloc=262144 fwd_cnt=6",
    "50000 → 1234 [CREDIT_REQUEST] buf_alloc=262144 fwd_cnt=0",
    "1234 → 50000 [RW] Len=7",
    "50000 → 1234 [SHUTDOWN rcv]",
    "50000 → 1234 [SHUTDOWN send]",
    "1234 → 50000 [SHUTDOWN rcv,send]",
    "50000 → 1234 [RST]",
    "50001 → 5000 [REQUEST] buf_alloc=262144 fwd_cnt=0 (seqpacket)",
    "5000 → 50001 [RESPONSE] buf_alloc=262144 fwd_cnt=0 (seqpacket)",
    "50001 → 5000 [RW] Len=100 (seqpacket) [vsock part of a reassembled message]",
    "50001 → 5000 [RW EOM] Len=50 (seqpacket)",
    "50001 → 5000 [RW EOM,EOR] Len=10 (seqpacket)",
    "50001 → 5000 [SHUTDOWN rcv,send] (seqpacket)",
    "5000 → 50001 [RST] (seqpacket)",
    "50002 → 6000 [RW] Len=5 (dgram)",
    "40000 → 40001 [REQUEST] buf_alloc=262144 fwd_cnt=0",
    "100 → 200 [REQUEST] buf_alloc=262144 fwd_cnt=0",
    "50003 → 1234 [Connect] Transport: No info",
    "50003 → 1234 [Disconnect] Transport: No info",
    "50003 → 1234 [Unknown] Transport: Unknown",
]

REQUIRED_FIELDS = {
    # name: type, as the issue and the built-in define them
    "vsock.src_cid": "FT_UINT64", "vsock.dst_cid": "FT_UINT64",
    "vsock.src_port": "FT_UINT32", "vsock.dst_port": "FT_UINT32",
    "vsock.op": "FT_UINT16", "vsock.trans": "FT_UINT16", "vsock.trans_len": "FT_UINT16",
    "vsock.reserved": "FT_BYTES", "vsock.trans_hdr": "FT_BYTES", "vsock.payload": "FT_BYTES",
    "vsock.len": "FT_UINT32", "vsock.cid": "FT_UINT64", "vsock.port": "FT_UINT32",
    "vsock.virtio.src_cid": "FT_UINT64", "vsock.virtio.dst_cid": "FT_UINT64",
    "vsock.virtio.src_port": "FT_UINT32", "vsock.virtio.dst_port": "FT_UINT32",
    "vsock.virtio.src_prot": "FT_UINT32", "vsock.virtio.dst_prot": "FT_UINT32",
    "vsock.virtio.len": "FT_UINT32", "vsock.virtio.type": "FT_UINT16", "vsock.virtio.op": "FT_UINT16",
    "vsock.virtio.flags": "FT_UINT32",
    "vsock.virtio.flags.shutdown_rcv": "FT_BOOLEAN", "vsock.virtio.flags.shutdown_send": "FT_BOOLEAN",
    "vsock.virtio.flags.seq_eom": "FT_BOOLEAN", "vsock.virtio.flags.seq_eor": "FT_BOOLEAN",
    "vsock.virtio.buf_alloc": "FT_UINT32", "vsock.virtio.fwd_cnt": "FT_UINT32",
}


def test_plugin_is_listed_with_its_version(tshark):
    out = tshark.text(["-G", "plugins"])
    rows = [line.split("\t") for line in out.splitlines() if line.startswith("vsock.so")]
    assert len(rows) == 1
    assert rows[0][1] == "0.1.0"
    assert rows[0][2] == "dissector"


def test_every_field_is_registered_with_its_type(tshark):
    types = {}
    for line in tshark.text(["-G", "fields"]).splitlines():
        parts = line.split("\t")
        if parts[0] == "F" and parts[2].startswith("vsock"):
            types.setdefault(parts[2], set()).add(parts[3])
    for name, ftype in REQUIRED_FIELDS.items():
        assert types.get(name) == {ftype}, name


def test_field_values_per_packet(tshark):
    rows = tshark.fields(tshark.capture(GOOD), HEADER_FIELDS)
    assert [tuple(row) for row in rows] == GOOD_HEADERS


def test_flag_bits_are_decoded_on_the_operations_that_define_them(tshark):
    fields = ["vsock.virtio.flags.shutdown_rcv", "vsock.virtio.flags.shutdown_send",
              "vsock.virtio.flags.seq_eom", "vsock.virtio.flags.seq_eor"]
    rows = tshark.fields(tshark.capture(GOOD), fields, "vsock.virtio.op == 4 || vsock.virtio.op == 5")
    frames = tshark.frames(tshark.capture(GOOD), "vsock.virtio.op == 4 || vsock.virtio.op == 5")
    by_frame = dict(zip(frames, [tuple(row) for row in rows]))
    assert by_frame[7] == ("1", "0", "", "")
    assert by_frame[8] == ("0", "1", "", "")
    assert by_frame[9] == ("1", "1", "", "")
    assert by_frame[16] == ("1", "1", "", "")
    # RW on a stream has no flags to decode; on seqpacket EOM and EOR.
    assert by_frame[3] == ("", "", "", "")
    assert by_frame[13] == ("", "", "0", "0")
    assert by_frame[14] == ("", "", "1", "0")
    assert by_frame[15] == ("", "", "1", "1")
    assert tshark.frames(tshark.capture(GOOD), "vsock.virtio.flags.seq_eor == 1") == [15]


def test_info_column(tshark):
    assert tshark.column(tshark.capture(GOOD), "_ws.col.Info") == GOOD_INFO


def test_protocol_and_address_columns(tshark):
    rows = tshark.fields(tshark.capture(GOOD), ["_ws.col.Protocol", "_ws.col.Source", "_ws.col.Destination"])
    assert {row[0] for row in rows} == {"vsock"}
    assert rows[0][1:] == ["3", "host"]
    assert rows[1][1:] == ["host", "3"]
    assert rows[18][1:] == ["local", "local"]
    assert rows[19][1:] == ["hypervisor", "any"]


def test_value_names_in_the_tree(tshark):
    out = tshark.text(["-r", tshark.capture(GOOD), "-V", "-Y", "frame.number == 5 || frame.number == 18"])
    assert "Operation: Credit request (7)" in out
    assert "Type: Dgram (proposed) (3)" in out
    assert "Source CID: 3" in out
    assert "Destination CID: host (2)" in out
    out = tshark.text(["-r", tshark.capture(GOOD), "-V", "-Y", "frame.number == 22"])
    assert "Transport: No info (1)" in out
    assert "Transport header bytes (not decoded): 0001020304050607" in out


def test_payload_filter_selects_exactly_the_payload_packets(tshark):
    capture = tshark.capture(GOOD)
    assert tshark.frames(capture, "vsock.op == 4") == [3, 6, 13, 14, 15, 18]
    assert tshark.frames(capture, "vsock.payload") == [3, 6, 13, 14, 15, 18]
    assert tshark.column(capture, "vsock.payload", "vsock.op == 4")[:2] == ["68656c6c6f0a", "776f726c64210a"]


def test_either_end_fields_and_old_names(tshark):
    capture = tshark.capture(GOOD)
    assert tshark.frames(capture, "vsock.port == 5000") == [11, 12, 13, 14, 15, 16, 17]
    assert tshark.frames(capture, "vsock.cid == 0") == [20]
    assert tshark.frames(capture, "vsock.cid == 1") == [19]
    # The built-in's misspelled names keep matching, hidden.
    assert tshark.frames(capture, "vsock.virtio.src_prot == 40000") == [19]
    assert tshark.frames(capture, "vsock.virtio.dst_prot == 6000") == [18]
    assert "src_prot" not in tshark.text(["-r", capture, "-V", "-Y", "frame.number == 19"])


def test_good_packets_carry_no_expert_info(tshark):
    for capture in (GOOD, "synthetic/http_request.pcap"):
        path = tshark.capture(capture)
        assert tshark.frames(path, "_ws.malformed") == []
        # Two REQUESTs in good.pcap are never answered: a later pass says so.
        assert tshark.vsock_experts(path) == {}
        assert tshark.vsock_experts(path, extra=["-2"]) == \
            ({19: {"vsock.analysis.no_response"}, 20: {"vsock.analysis.no_response"}} if capture == GOOD else {})


@pytest.mark.parametrize("two_pass", [False, True])
def test_passes_agree(tshark, two_pass):
    extra = ["-2"] if two_pass else []
    assert tshark.column(tshark.capture(GOOD), "_ws.col.Info", extra=extra) == GOOD_INFO


def test_every_expert_info_has_a_test(tshark):
    """The expert infos come from the plugin itself (tshark -G fields): a new one
    that no test names fails here instead of going untested."""
    tests = os.path.dirname(os.path.abspath(__file__))
    text = ""
    for name in os.listdir(tests):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(tests, name)) as f:
                text += f.read()
    experts = tshark.experts()
    assert len(experts) > 30
    assert sorted(e for e in experts if e not in text) == []


def test_source_and_destination_columns_of_unnamed_cids(tshark):
    """CIDs without a name show their own numbers in both columns (a buffer
    shared by the two columns once made both show the same CID)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import gen_test_captures as gen  # the project's capture builder

    capture = tshark.scratch_file("cid16.pcap", gen.pcap_bytes([
        gen.virtio_frame((16, 5000), (3, 1234), gen.OP_REQUEST),
        gen.virtio_frame((3, 1234), (gen.CID_HOST, 1234), gen.OP_RW, payload=b"x")]))
    assert tshark.fields(capture, ["_ws.col.Source", "_ws.col.Destination"]) == [["16", "3"], ["3", "host"]]


SYNTHETIC = sorted(n for n in os.listdir(os.path.join(REPO, "test-captures", "synthetic")) if n.endswith(".pcap"))


def hidden_and_shown_columns(tshark, capture, fields, passes):
    """Per frame, a custom column for each field, from a summary pass (its tree
    is not shown) and from the same pass with a shown tree (-V)."""
    columns = '"No.","%m"' + "".join(f',"{n}","%Cus:{name}"' for n, name in enumerate(fields))
    args = ["-r", capture, "-n", "-T", "tabs", "-o", "gui.column.format:" + columns] + passes
    hidden = tshark.text(args).splitlines()
    shown = [line for line in tshark.text(args + ["-V", "-P"]).splitlines()
             if line.split("\t")[0].strip().isdigit() and line.count("\t") == len(fields)]
    return hidden, shown


@pytest.mark.parametrize("passes", [[], ["-2"]], ids=["one-pass", "two-pass"])
def test_hidden_tree_holds_what_is_asked_for(tshark, passes):
    """In a tree that is not shown the plugin adds only the fields a filter or
    column asks for, and hangs the expert infos of those it leaves out on the
    parent item. Asked for alone, the expert infos, and apart from them the
    fields with values (without their subtree parents), must give every frame
    the cells a shown tree gives, on every synthetic capture."""
    experts = sorted(tshark.experts())
    values = sorted(name for name, ftype in tshark.plugin_fields().items() if ftype != "FT_NONE")
    cells = {"experts": 0, "values": 0}
    for name in SYNTHETIC:
        capture = tshark.capture("synthetic/" + name)
        for kind, fields in (("experts", experts), ("values", values)):
            hidden, shown = hidden_and_shown_columns(tshark, capture, fields, passes)
            assert hidden == shown, (name, kind)
            cells[kind] += sum(1 for line in hidden for cell in line.split("\t")[1:] if cell)
    assert cells["experts"] > 40 and cells["values"] > 100000, cells
