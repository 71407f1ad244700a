#!/usr/bin/env python3
"""Writes the captures of test-captures/regression/ (deterministic).

Each one is the smallest input found for a bug that fuzzing found; the test
(tests/test_fuzz.py::test_regression_capture) checks that every capture in that
folder dissects without "Dissector bug", "Reassembly error", crash or warning,
in one pass and in two. See test-captures/regression/README.md.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))
import fuzz  # noqa: E402

F = fuzz.frame_bytes
OUT = os.path.join(REPO, "test-captures", "regression")


def ssh_connection(segments):
    """A stream connection to port 22 whose client sends these RW payloads, then closes."""
    frames = [F(3, 2, 50000, 22, fuzz.OP_REQUEST), F(2, 3, 22, 50000, fuzz.OP_RESPONSE)]
    frames += [F(3, 2, 50000, 22, fuzz.OP_RW, payload=s) for s in segments]
    frames += [F(3, 2, 50000, 22, fuzz.OP_SHUTDOWN, flags=3), F(2, 3, 22, 50000, fuzz.OP_RST)]
    return frames


def main():
    os.makedirs(OUT, exist_ok=True)
    # An SSH packet split over frames 3 and 4 whose reassembly completes in frame 4
    # with bytes to spare, and the SSH dissector throws on it (a KEXINIT too short).
    # The MSP stayed open with its end before the next segment: frame 5 asked
    # fragment_add() for 2^32 - 16 bytes ("Dissector bug ... tvb_bytes_exist").
    fuzz.write_pcap(os.path.join(OUT, "msp_subdissector_exception.pcap"), ssh_connection([
        b"SSH-2.0-OpenSSH_9.2\r\n" + b"\x00\x00\x00\x0c\x04\x14" + b"A" * 4,
        b"A" * 6 + b"B" * 40,
        b"C" * 30,
        b"D" * 30,
    ]))
    # The same with an MSP that waited for "one more segment": the complete
    # reassembly stayed open and every later segment was added past its end
    # ("Reassembly error, protocol vsock: New fragment past old data limits").
    fuzz.write_pcap(os.path.join(OUT, "msp_one_more_exception.pcap"), ssh_connection([
        b"SSH-2.0-x\r\n\x00\x00",
        b"\x00\x0c\x04\x14" + b"A" * 10 + b"B" * 50,
        b"C" * 50,
        b"D" * 50,
    ]))
    # A seqpacket message in two parts whose last part the capture cut (snap
    # length: 40 of its 100 payload bytes captured). Adding the payload item
    # stops the dissection there; when the item was left out of trees that do
    # not show it, the cut part reached fragment_add() in a summary pass
    # ("Dissector bug ... tvb_bytes_exist").
    last = F(3, 2, 50000, 1234, fuzz.OP_RW, vtype=fuzz.TYPE_SEQPACKET, flags=3, payload=b"B" * 100)
    fuzz.write_pcap(os.path.join(OUT, "seqpacket_part_cut_by_snaplen.pcap"), [
        F(3, 2, 50000, 1234, fuzz.OP_REQUEST, vtype=fuzz.TYPE_SEQPACKET),
        F(2, 3, 1234, 50000, fuzz.OP_RESPONSE, vtype=fuzz.TYPE_SEQPACKET),
        F(3, 2, 50000, 1234, fuzz.OP_RW, vtype=fuzz.TYPE_SEQPACKET, payload=b"A" * 100),
        (last[:len(last) - 60], len(last)),
    ])


if __name__ == "__main__":
    main()
