"""Each kind of bad input gets its own expert info, and what can still be read is read."""

import pytest


# capture -> (the expert infos it must raise, and nothing else; one message to match exactly)
CASES = {
    "bad_short_vsockmon": ({"vsock.hdr.short"}, "vsockmon header truncated: 20 of 32 bytes"),
    "bad_trans_len_past_end": ({"vsock.trans_len.past_end"},
                               "Transport length 44 runs past the end of the packet (20 bytes left)"),
    "bad_virtio_len_short": ({"vsock.virtio.hdr_len.bad", "vsock.virtio.truncated"},
                             "Virtio header truncated: 40 of 44 bytes"),
    "bad_virtio_len_long": ({"vsock.virtio.hdr_len.bad"}, "Transport length 48, but the virtio header is 44 bytes"),
    "bad_unknown_trans_with_len": ({"vsock.trans.unknown", "vsock.trans_hdr.skipped"},
                                   "8 bytes of a transport header that is not decoded were skipped"),
    "bad_unknown_trans": ({"vsock.trans.unknown"}, "Unknown transport 5"),
    "bad_payload_longer": ({"vsock.len.mismatch"},
                           "Frame holds 10 payload bytes but virtio len is 4: only the first 4 are payload "
                           "(how kernels without Linux commit 5f344d809e01 capture packets split by vhost)"),
    "bad_payload_shorter": ({"vsock.len.mismatch"},
                            "Frame holds 4 payload bytes but virtio len is 10 (a kernel capture bug or a damaged capture)"),
    "bad_cid_mismatch": ({"vsock.cid.mismatch"}, "Virtio source CID 3 differs from vsockmon source CID 4"),
    "bad_port_mismatch": ({"vsock.port.mismatch"},
                          "Virtio destination port 1234 differs from vsockmon destination port 1235"),
    "bad_op_mismatch": ({"vsock.op.mismatch"},
                        "vsockmon operation Connect does not match virtio operation RW (expected Payload)"),
    "bad_unknown_vsockmon_op": ({"vsock.op.unknown", "vsock.op.mismatch"}, "Unknown vsockmon operation 9"),
    "bad_unknown_virtio_op": ({"vsock.virtio.op.unknown"}, "Unknown virtio operation 9"),
    "bad_invalid_virtio_op": ({"vsock.virtio.op.invalid"}, "Operation 0 (VIRTIO_VSOCK_OP_INVALID)"),
    "bad_unknown_virtio_type": ({"vsock.virtio.type.unknown"}, "Unknown socket type 7"),
    "bad_reserved_nonzero": ({"vsock.reserved.nonzero"}, "Reserved field is 0x1234, should be zero"),
    "bad_payload_on_non_rw": ({"vsock.payload.unexpected"}, "4 payload bytes on a packet that carries no data"),
    "bad_rw_len_zero": ({"vsock.virtio.len.zero"}, "RW packet without payload (Linux never sends one)"),
    "bad_cid_upper_bits": ({"vsock.cid.reserved_bits"},
                           "Upper 32 bits of CID 0x0000000100000003 are set (reserved, must be zero)"),
    "bad_shutdown_no_flags": ({"vsock.virtio.flags.shutdown_none"}, "SHUTDOWN with neither RCV nor SEND set"),
    "bad_flags_unknown_bits": ({"vsock.virtio.flags.unknown"}, "Flag bits 0x00000010 are not defined for this operation"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_expert_info_per_case(tshark, name):
    expected, message = CASES[name]
    capture = tshark.capture(f"synthetic/{name}.pcap")
    (names,) = tshark.pdml_field_names(capture)
    assert names & tshark.header_experts() == expected
    messages = tshark.column(capture, "_ws.expert.message")[0].split("|")
    assert message in messages


@pytest.mark.parametrize("two_pass", [[], ["-2"]])
def test_every_expert_can_be_filtered(tshark, two_pass):
    for name, (expected, _) in CASES.items():
        capture = tshark.capture(f"synthetic/{name}.pcap")
        for expert in expected:
            assert tshark.frames(capture, expert, extra=two_pass) == [1], (name, expert)


def one_packet(tshark, name, fields):
    (row,) = tshark.fields(tshark.capture(f"synthetic/{name}.pcap"), fields)
    return row


def test_rest_of_packet_still_dissected(tshark):
    # Extra transport bytes are shown, and the payload after them is still found.
    assert one_packet(tshark, "bad_virtio_len_long", ["vsock.trans_hdr", "vsock.payload", "vsock.virtio.op"]) == \
        ["eeeeeeee", "64617461", "5"]
    assert one_packet(tshark, "bad_unknown_trans_with_len", ["vsock.trans_hdr", "vsock.payload", "vsock.len"]) == \
        ["aaaaaaaaaaaaaaaa", "64617461", "4"]
    # Payload bounded by virtio len, the excess shown apart and not handed on.
    assert one_packet(tshark, "bad_payload_longer", ["vsock.payload", "vsock.payload_excess", "vsock.len", "data.data"]) == \
        ["64617461", "455854524121", "4", "64617461"]
    assert one_packet(tshark, "bad_payload_shorter", ["vsock.payload", "vsock.len"]) == ["64617461", "4"]
    # A truncated virtio header: the vsockmon header and the bytes there are.
    assert one_packet(tshark, "bad_trans_len_past_end", ["vsock.src_port", "vsock.trans_len", "vsock.trans_hdr"])[:2] == \
        ["50000", "44"]
    assert len(one_packet(tshark, "bad_virtio_len_short", ["vsock.trans_hdr"])[0]) == 80
    # The header fields around each problem are all there.
    assert one_packet(tshark, "bad_cid_mismatch", ["vsock.src_cid", "vsock.virtio.src_cid", "vsock.payload"]) == \
        ["4", "3", "64617461"]
    assert one_packet(tshark, "bad_cid_upper_bits", ["vsock.src_cid", "vsock.virtio.src_cid"]) == \
        ["4294967299", "4294967299"]
    assert one_packet(tshark, "bad_reserved_nonzero", ["vsock.reserved", "vsock.payload"]) == ["3412", "64617461"]
    assert one_packet(tshark, "bad_payload_on_non_rw", ["vsock.payload", "data.data"]) == ["64617461", ""]


def test_short_header_is_shown_as_bytes(tshark):
    assert one_packet(tshark, "bad_short_vsockmon", ["vsock.trans_hdr", "vsock.src_cid"])[1] == ""


def test_only_truncations_are_malformed(tshark):
    malformed = {name for name in CASES
                 if tshark.frames(tshark.capture(f"synthetic/{name}.pcap"), "_ws.malformed")}
    assert malformed == {"bad_short_vsockmon", "bad_trans_len_past_end", "bad_virtio_len_short",
                         "bad_virtio_len_long"}
