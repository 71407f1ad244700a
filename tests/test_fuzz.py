"""A short fuzz run (tools/fuzz.py) as part of the test suite.

About two minutes: editcap -E mutations of the test captures and generated
random vsock packets, each run through tshark with the plugin five ways (one
pass, -V -x, -2 -V with Decode As, -2 with statistics and follow, a display
filter). Fails on any crash, abort, signal, hang, "Dissector bug", log
warning/critical or sanitizer report; the failing input is kept and its path
printed.

The seed is fixed so a failure here reproduces; VSOCK_FUZZ_SEED, VSOCK_FUZZ_SECONDS
and VSOCK_FUZZ_KEEP_DIR change the seed, the length and where inputs are kept.
A long run with a random seed: see tools/fuzz/README.md.
"""

import os
import subprocess
import sys
import tempfile

import pytest

from vsocktest import REPO

FUZZ = os.path.join(REPO, "tools", "fuzz.py")


def test_fuzz_short_run():
    plugin = os.environ.get("VSOCK_PLUGIN", os.path.join(REPO, "build", "vsock.so"))
    seconds = os.environ.get("VSOCK_FUZZ_SECONDS", "120")
    seed = os.environ.get("VSOCK_FUZZ_SEED", "20240606")
    keep = os.environ.get("VSOCK_FUZZ_KEEP_DIR", os.path.join(tempfile.gettempdir(), "vsock-fuzz-failures"))
    cmd = [sys.executable, FUZZ, "--seconds", seconds, "--seed", seed, "--keep-dir", keep,
           "--plugin", plugin]
    if os.environ.get("VSOCK_WIRESHARK_ABI"):
        cmd += ["--abi", os.environ["VSOCK_WIRESHARK_ABI"]]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=int(float(seconds)) + 600)
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    assert proc.returncode == 0, f"fuzzing found a failure (inputs kept in {keep}):\n{out[-6000:]}"
    assert " 0 failing" in out


REGRESSION = sorted(f for f in os.listdir(os.path.join(REPO, "test-captures", "regression"))
                    if f.endswith(".pcap"))


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("passes", [["-V"], ["-2", "-V"], [], ["-Y", "vsock.len > 0"]],
                         ids=["one-pass", "two-pass", "summary", "filter"])
def test_regression_capture(tshark, name, passes):
    """Inputs that fuzzing found (test-captures/regression/README.md) dissect cleanly."""
    out = tshark.text(passes + ["-r", tshark.capture("regression/" + name)])
    for bad in ("Dissector bug", "Reassembly error", "Malformed Packet: vsock"):
        assert bad not in out, f"{name}: '{bad}'"
