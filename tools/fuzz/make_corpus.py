#!/usr/bin/env python3
"""Seed corpora for the libFuzzer harness (tools/fuzz/fuzz_vsock.c).

    tools/fuzz/make_corpus.py OUT_DIR

OUT_DIR/single/: every frame of every capture in test-captures/ (one frame per
file: the default mode). OUT_DIR/multi/: runs of up to 24 consecutive frames of
each capture and of captures made by tools/fuzz.py's generator, each frame cut
to 2048 bytes and prefixed with its 16-bit little-endian length (the
VSOCK_FUZZ_MULTI=1 mode). Standard library only; output is deterministic.
"""

import glob
import hashlib
import os
import random
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))
import fuzz  # noqa: E402  (tools/fuzz.py: pcap reading and the packet generator)


def write(directory, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz-corpus"
    single, multi = os.path.join(out, "single"), os.path.join(out, "multi")
    os.makedirs(single, exist_ok=True)
    os.makedirs(multi, exist_ok=True)
    captures = sorted(glob.glob(os.path.join(REPO, "test-captures", "**", "*.pcap"), recursive=True))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(8):
            path = os.path.join(tmp, f"gen{seed}.pcap")
            fuzz.generate_capture(random.Random(seed), path)
            captures.append(path)
        n_single = n_multi = 0
        for path in captures:
            frames = [data for _, data in fuzz.read_pcap(path)]
            if "gen" not in os.path.basename(path):
                for data in frames:
                    write(single, data[:65536])
                    n_single += 1
            for start in range(0, len(frames), 24):
                chunk = frames[start:start + 24]
                blob = b"".join(struct.pack("<H", len(d[:2048])) + d[:2048] for d in chunk)
                write(multi, blob)
                n_multi += 1
    print(f"{out}: {n_single} single-frame seeds, {n_multi} multi-frame seeds")


if __name__ == "__main__":
    main()
