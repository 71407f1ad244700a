"""Every field name of the built-in dissector gives, with the plugin, the values
the built-in gives without it: filters that users have keep working."""

import glob
import os

import pytest

from vsocktest import CAPTURES

BUILTIN_FIELDS = [
    "vsock.src_cid", "vsock.dst_cid", "vsock.src_port", "vsock.dst_port", "vsock.op", "vsock.trans",
    "vsock.trans_len", "vsock.reserved", "vsock.payload", "vsock.virtio.src_cid", "vsock.virtio.dst_cid",
    "vsock.virtio.src_prot", "vsock.virtio.dst_prot", "vsock.virtio.len", "vsock.virtio.type",
    "vsock.virtio.op", "vsock.virtio.flags", "vsock.virtio.buf_alloc", "vsock.virtio.fwd_cnt",
]
PAYLOAD = BUILTIN_FIELDS.index("vsock.payload")

# The built-in reads past the end of these (it reports them malformed) or shows nothing.
BUILTIN_CANNOT_READ = {"bad_trans_len_past_end", "bad_virtio_len_short"}


def captures():
    names = []
    for folder in ("synthetic", "real", "reference"):
        for path in sorted(glob.glob(os.path.join(CAPTURES, folder, "*.pcap"))):
            name = os.path.splitext(os.path.basename(path))[0]
            if name not in BUILTIN_CANNOT_READ:
                names.append(f"{folder}/{name}.pcap")
    return names


@pytest.mark.parametrize("capture", captures())
def test_builtin_fields_give_the_builtin_values(tshark, capture):
    path = tshark.capture(capture)
    builtin = tshark.fields(path, BUILTIN_FIELDS, plugin=False)
    ours = tshark.fields(path, BUILTIN_FIELDS + ["vsock.payload_excess"])
    assert len(ours) == len(builtin)
    for number, (want, got) in enumerate(zip(builtin, ours), start=1):
        excess = got.pop()
        if excess:
            # Linux 6.1 capture bug: the built-in shows every byte of the frame as
            # payload, the plugin the first virtio.len bytes and the rest apart.
            assert want[PAYLOAD] == got[PAYLOAD] + excess, (capture, number)
            want[PAYLOAD] = got[PAYLOAD]
        assert got == want, (capture, number)


def test_capture_bug_exception_is_exercised(tshark):
    """The vhost capture from Linux 6.1 really has frames longer than virtio.len."""
    frames = tshark.frames(tshark.capture("real/vhost_guest.pcap"), "vsock.payload_excess") + \
        tshark.frames(tshark.capture("real/vhost.pcap"), "vsock.payload_excess")
    assert len(frames) > 0


def test_builtin_is_replaced(tshark):
    capture = tshark.capture("synthetic/good.pcap")
    assert tshark.column(capture, "_ws.col.Protocol", plugin=False)[0] == "vSocket"
    assert tshark.column(capture, "_ws.col.Protocol")[0] == "vsock"
