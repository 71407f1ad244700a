"""The "vsock" configuration profile (assembled by CMake in BUILD/profiles/vsock)
and the runs of tshark and tools that vsocktest.Tshark.run does not cover: with
an environment of their own (WIRESHARK_DATA_DIR, matplotlib's cache), or on a
terminal (tshark --color colours only what goes to a terminal).
"""

import csv
import os
import pty
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

from vsocktest import FATAL_STDERR, REPO

BUILD_DIR = os.environ.get("VSOCK_BUILD_DIR", os.path.join(REPO, "build"))
PROFILE_BUILD = os.path.join(BUILD_DIR, "profiles", "vsock")
PROFILE_SOURCE = os.path.join(REPO, "profiles")
PROFILE_FILES = ["colorfilters", "dfilter_buttons", "io_graphs", "preferences"]
STREAM_GRAPH = os.path.join(REPO, "tools", "vsock-stream-graph")


def as_nobody(cmd):
    """Drops root, as vsocktest does: tshark loads no personal plugin as root."""
    if os.getuid() == 0 or os.getgid() == 0:
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
    return cmd


def nobody_dir(parent):
    """A fresh folder uid 65534 can write to."""
    path = tempfile.mkdtemp(dir=parent)
    os.chmod(path, 0o777)
    return path


def environment(tshark, plugin=True, **extra):
    """The environment vsocktest.Tshark.run gives tshark, plus extra variables."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tshark.home,
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "WIRESHARK_PLUGIN_DIR": tshark.plugin_dir if plugin else tshark.no_plugin_dir,
        "WIRESHARK_ABORT_ON_DISSECTOR_BUG": "1",
        "WIRESHARK_LOG_DOMAINS": "!packet-ssh",
    }
    env.update(extra)
    return env


def run(cmd, env, tty=False, timeout=600):
    """Runs cmd as uid 65534; stdout on a pseudo-terminal if tty. Returns (rc, out, err)."""
    cmd = as_nobody(cmd)
    if not tty:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        out, err = proc.stdout, proc.stderr
    else:
        master, slave = pty.openpty()
        with subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                              stderr=subprocess.PIPE) as proc:
            os.close(slave)
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:     # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(master)
            err = proc.stderr.read()
            proc.wait(timeout=timeout)
        out = b"".join(chunks).replace(b"\r\n", b"\n")
    err = err.decode("utf-8", "replace")
    for pattern in FATAL_STDERR:
        assert pattern not in err, f"{' '.join(cmd)}: '{pattern}' on stderr:\n{err[-3000:]}"
    return proc.returncode, out.decode("utf-8", "replace"), err


def have_pty():
    """Whether a pseudo-terminal can be opened (a chroot without /dev/pts has none)."""
    try:
        master, slave = pty.openpty()
    except OSError:
        return False
    os.close(master)
    os.close(slave)
    return True


def install_personal_profile(tshark):
    """Copies the built profile into the tests' HOME, where `tshark -C vsock` finds it."""
    target = os.path.join(tshark.home, ".config", "wireshark", "profiles", "vsock")
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.makedirs(target)
    for name in PROFILE_FILES:
        shutil.copy(os.path.join(PROFILE_BUILD, name), target)
    path = tshark.home
    for dirpath, _, filenames in os.walk(path):
        os.chmod(dirpath, 0o777)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666)
    return target


ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RGB = re.compile(r"\x1b\[(38|48);2;(\d+);(\d+);(\d+)m")


def colours(text):
    """tshark --color output: {frame number: (foreground, background)}, each an (r, g, b)
    tuple of the 24-bit escape codes, or (None, None) for an uncoloured row."""
    rows = {}
    for line in text.splitlines():
        plain = ESCAPE.sub("", line).strip()
        if not plain or not plain.split()[0].isdigit():
            continue
        codes = {kind: tuple(int(v) for v in rgb) for kind, *rgb in RGB.findall(line)}
        rows[int(plain.split()[0])] = (codes.get("38"), codes.get("48"))
    return rows


def colour_rules(path):
    """A colorfilters file: [(name, filter, background, foreground)], colours 16-bit."""
    rules = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(!?)@(.*)@(.*)@\[(\d+),(\d+),(\d+)\]\[(\d+),(\d+),(\d+)\]$", line.rstrip("\n"))
            if m:
                values = [int(v) for v in m.groups()[3:]]
                rules.append((m.group(2), m.group(3), tuple(values[:3]), tuple(values[3:])))
            else:
                assert line.startswith("#") or not line.strip(), f"{path}: not a rule: {line!r}"
    return rules


def uat_records(path):
    """The records of a UAT file (dfilter_buttons, io_graphs): quoted CSV, # comments."""
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip() and not line.startswith("#")]
    return [row for row in csv.reader(lines, skipinitialspace=True)]


def psml(text):
    """-T psml output: (column titles, [[cell, ...] per packet])."""
    root = ET.fromstring(text)
    titles = [s.text or "" for s in root.find("structure")]
    packets = [[s.text or "" for s in packet] for packet in root.findall("packet")]
    return titles, packets
