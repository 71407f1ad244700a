#!/usr/bin/env python3
"""Fuzz the vsock plugin through tshark, in the style of Wireshark's
tools/fuzz-test.sh.

Each iteration makes one capture and runs tshark with the plugin over it in
several ways; any crash, abort, signal, timeout, non-zero exit, "Dissector
bug", GLib/Wireshark log warning or critical, or sanitizer report is a
failure, and the input that caused it is kept.

Two kinds of input, alternating:

  mutate    a capture from test-captures/ (or a generated well-formed one)
            damaged with `editcap -E RATE --seed N` (each byte changed with
            probability RATE, as Wireshark's fuzz bots do)
  generate  random vsock packets written as pcap: random lengths, vsockmon
            and virtio ops, types, transports, transport lengths and header
            fields, payloads of real protocols cut at random places,
            connections with credit accounting that are then perturbed
            (dropped, duplicated, reordered, damaged packets, reused ports),
            truncations of the frame and of the capture (caplen < len)

tshark runs per input (fuzz-test.sh runs -nr and -nVxr, optionally -2):
  -n -r F                           one pass, summary lines only
  -n -V -x -r F                     one pass, full detail and hex
  -n -2 -V -r F [-d vsock.port==..] two passes, full detail, payloads forced
                                    to HTTP, TLS, SSH, HTTP/2 by Decode As
  -n -2 -q -z expert -z io,phs [-z conv,vsock -z endpoints,vsock
                                    -z follow,vsock,...] statistics (taps)
                                    (the vsock ones when the plugin has them)
  -n -Y vsock.len>0 -r F            a display filter on a one-pass read

Everything is reproducible: iteration I of seed S always makes the same
input (`--seed S --iterations I..I` replays it). tshark runs unprivileged
(setpriv to nobody, as tests/vsocktest.py does), with
WIRESHARK_ABORT_ON_DISSECTOR_BUG, WIRESHARK_ABORT_ON_TOO_MANY_ITEMS,
WIRESHARK_DEBUG_WMEM_OVERRIDE=strict, G_SLICE=debug-blocks and MALLOC_CHECK_=3
(Wireshark's fuzz settings); LD_PRELOAD, ASAN_OPTIONS, UBSAN_OPTIONS and
LSAN_OPTIONS are passed through for a sanitizer build (tools/sanitize-test.sh).

Usage:
  tools/fuzz.py [--seconds N] [--seed S] [--keep-dir DIR] [--plugin vsock.so]
  tools/fuzz.py --replay FILE.pcap      # run the checks on one capture

Exit status 0 when nothing failed, 1 when something did (inputs in --keep-dir).
Standard library only.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
import vsocktest  # noqa: E402  (tests/vsocktest.py: the unprivileged run set-up)

LINKTYPE_VSOCK = 271
PCAP_MAGIC = 0xA1B2C3D4
SNAPLEN = 262144

# What must never appear on stderr (tests/vsocktest.py's list, plus a few).
FATAL_STDERR = tuple(vsocktest.FATAL_STDERR) + (
    "ERROR: AddressSanitizer", "UndefinedBehaviorSanitizer", "Segmentation fault",
    "Aborted", "Assertion", "g_assert", "GLib-CRITICAL", "GLib-WARNING", "wmem", "[Epan WARNING]",
    "[Epan CRITICAL]", "WARNING", "CRITICAL", "ERROR **")
FATAL_STDOUT = tuple(vsocktest.FATAL_STDOUT) + ("Dissector bug",)

# Dissector bugs in these protocols (short names, as tshark reports them) are
# ours; in any other, Wireshark's.
OUR_PROTOCOLS = ("vsock", "ttrpc", "gvisor-tap-vsock")
UPSTREAM = "upstream: "

# Wireshark's fuzz-testing environment (tools/test-common.sh in wireshark).
FUZZ_ENV = {
    # Not WIRESHARK_ABORT_ON_DISSECTOR_BUG: tshark then names the protocol of a
    # dissector bug, and one in Wireshark's own dissectors is told apart from ours.
    "WIRESHARK_ABORT_ON_TOO_MANY_ITEMS": "1",
    "WIRESHARK_DEBUG_WMEM_OVERRIDE": "strict",
    "G_SLICE": "debug-blocks",
    "MALLOC_CHECK_": "3",
    "G_DEBUG": "fatal-criticals",
    # 4.6's SSH dissector warns on post-quantum key exchange (real/ssh.pcap):
    # Wireshark's message, not our bug (as in tests/vsocktest.py).
    "WIRESHARK_LOG_DOMAINS": "!packet-ssh",
}
PASSTHROUGH_ENV = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")

# vsock constants (shared/reference/vsock-format.md)
MON_OP_UNKNOWN, MON_OP_CONNECT, MON_OP_DISCONNECT, MON_OP_CONTROL, MON_OP_PAYLOAD = range(5)
TRANS_UNKNOWN, TRANS_NO_INFO, TRANS_VIRTIO = range(3)
TYPE_STREAM, TYPE_SEQPACKET, TYPE_DGRAM = 1, 2, 3
(OP_INVALID, OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE,
 OP_CREDIT_REQUEST) = range(8)
MON_OP_FOR = {OP_REQUEST: MON_OP_CONNECT, OP_RESPONSE: MON_OP_CONNECT, OP_RST: MON_OP_DISCONNECT,
              OP_SHUTDOWN: MON_OP_DISCONNECT, OP_RW: MON_OP_PAYLOAD,
              OP_CREDIT_UPDATE: MON_OP_CONTROL, OP_CREDIT_REQUEST: MON_OP_CONTROL}
VIRTIO_HDR = struct.Struct("<QQIIIHHIII")
MON_HDR = struct.Struct("<QQIIHHHH")

# Ports the real world uses (Kata, Nitro, systemd, ChromeOS, ...) and the ones
# the runs force to a protocol with Decode As.
SERVICE_PORTS = (22, 80, 443, 1024, 1025, 1026, 2049, 4050, 5000, 8000, 8080, 8888, 8889, 8890,
                 9000, 9001, 9999, 10000, 52, 53)
DECODE_AS = (("80", "http"), ("443", "tls"), ("22", "ssh"), ("8888", "http2"), ("53", "dns"))
CID_VALUES = (0, 1, 2, 3, 4, 5, 0xFFFFFFFF, 0xFFFFFFFE, 1 << 32, (1 << 64) - 1, 0x100000003)
U16_VALUES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7FFF, 0x8000, 0xFFFF)
U32_VALUES = (0, 1, 2, 43, 44, 45, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 65536, 65537,
              262144, 4096)


# --------------------------------------------------------------------------
# pcap
# --------------------------------------------------------------------------

def pcap_header(linktype=LINKTYPE_VSOCK, snaplen=SNAPLEN):
    return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts_us, data, orig_len=None):
    orig_len = len(data) if orig_len is None else orig_len
    return struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data), orig_len) + data


def read_pcap(path):
    """The records of a classic little- or big-endian pcap: list of (header, data)."""
    with open(path, "rb") as f:
        blob = f.read()
    magic = struct.unpack_from("<I", blob, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    records, off = [], 24
    while off + 16 <= len(blob):
        _, _, caplen, _ = struct.unpack_from(endian + "IIII", blob, off)
        records.append((blob[off:off + 16], blob[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return records


def write_pcap(path, frames, start_us=1_700_000_000_000_000):
    """frames: list of bytes or (bytes, orig_len)."""
    with open(path, "wb") as f:
        f.write(pcap_header())
        ts = start_us
        for frame in frames:
            data, orig = (frame, None) if isinstance(frame, (bytes, bytearray)) else frame
            f.write(pcap_record(ts, bytes(data), orig))
            ts += 1000
    os.chmod(path, 0o644)


# --------------------------------------------------------------------------
# Random vsock packets
# --------------------------------------------------------------------------

def pick(rng, values, bits):
    """An interesting value most of the time, otherwise a small or any random one."""
    r = rng.random()
    if r < 0.6:
        return rng.choice(values)
    if r < 0.8:
        return rng.randrange(0, 256)
    return rng.getrandbits(bits)


def frame_bytes(src_cid, dst_cid, src_port, dst_port, virtio_op, vtype=TYPE_STREAM, flags=0,
                buf_alloc=262144, fwd_cnt=0, payload=b"", vlen=None):
    """A well-formed captured packet, as a healthy kernel writes it."""
    vlen = len(payload) if vlen is None else vlen
    mon = MON_HDR.pack(src_cid, dst_cid, src_port, dst_port, MON_OP_FOR.get(virtio_op, 0),
                       TRANS_VIRTIO, 44, 0)
    virtio = VIRTIO_HDR.pack(src_cid, dst_cid, src_port, dst_port, vlen, vtype, virtio_op, flags,
                             buf_alloc, fwd_cnt)
    return mon + virtio + payload


def random_payload(rng, n):
    return rng.randbytes(n) if n else b""


def app_stream(rng, port):
    """Bytes of an application protocol, as one direction of a connection carries them."""
    kind = rng.choice(("http", "tls", "ssh", "ttrpc", "http2", "lines", "dns", "random", "heartbeat"))
    if port in (80, 8080) or kind == "http":
        body = random_payload(rng, rng.choice((0, 5, 100, 3000)))
        head = (b"POST /v1/%d HTTP/1.1\r\nHost: vsock\r\nContent-Length: %d\r\n" % (rng.randrange(1000), len(body)))
        if rng.random() < 0.3:
            head += b"Transfer-Encoding: chunked\r\n"
        return head + b"\r\n" + body + (b"HTTP/1.1 200 OK\r\n\r\n" if rng.random() < 0.3 else b"")
    if port == 443 or kind == "tls":
        out = b""
        for _ in range(rng.randrange(1, 4)):
            body = random_payload(rng, rng.choice((1, 40, 300, 17000)))
            out += bytes([rng.choice((20, 21, 22, 23, 24))]) + b"\x03" + bytes([rng.randrange(0, 5)])
            out += struct.pack(">H", len(body) if rng.random() < 0.8 else rng.getrandbits(16)) + body
        return out
    if port == 22 or kind == "ssh":
        out = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
        for _ in range(rng.randrange(0, 3)):
            body = random_payload(rng, rng.randrange(1, 600))
            out += struct.pack(">IB", len(body) + 1 if rng.random() < 0.8 else rng.getrandbits(32),
                               rng.randrange(0, 255)) + body
        return out
    if kind == "ttrpc":
        out = b""
        for _ in range(rng.randrange(1, 4)):
            body = random_payload(rng, rng.randrange(0, 300))
            out += struct.pack(">IIBB", len(body) if rng.random() < 0.8 else rng.getrandbits(32),
                               rng.randrange(1, 100, 2), rng.randrange(1, 4), rng.randrange(0, 4)) + body
        return out
    if port == 8888 or kind == "http2":
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" if rng.random() < 0.7 else b""
        for _ in range(rng.randrange(1, 4)):
            body = random_payload(rng, rng.randrange(0, 200))
            out += struct.pack(">I", len(body))[1:] + bytes([rng.randrange(0, 10), rng.getrandbits(8)])
            out += struct.pack(">I", rng.getrandbits(31)) + body
        return out
    if kind == "lines":
        return b"".join(rng.choice((b"READY=1\n", b'{"execute":"guest-ping"}\n', b"STATUS=ok\n",
                                    b"\n", b"X" * 200 + b"\n")) for _ in range(rng.randrange(1, 6)))
    if port == 53 or kind == "dns":
        body = random_payload(rng, rng.randrange(12, 100))
        return struct.pack(">H", len(body)) + body
    if kind == "heartbeat":
        return b"\xb7"
    return random_payload(rng, rng.choice((1, 7, 100, 1000, 4000, 70000)))


def split(rng, data):
    """data cut into pieces at random places (one piece per RW packet)."""
    pieces, i = [], 0
    while i < len(data):
        n = rng.choice((1, 2, 3, 10, 100, 1000, 3700, 4096, 65536, len(data)))
        pieces.append(data[i:i + n])
        i += n
    return pieces


def connection(rng, cids=None, ports=None):
    """One connection's packets in order, with credit accounting: a list of frames."""
    c_cid, s_cid = cids or (rng.choice((3, 3, 4, 2, 1)), rng.choice((2, 2, 3, 1, 0xFFFFFFFF)))
    c_port, s_port = ports or (rng.choice((rng.getrandbits(32), rng.randrange(1024, 65536))),
                               rng.choice(SERVICE_PORTS))
    vtype = rng.choice((TYPE_STREAM, TYPE_STREAM, TYPE_STREAM, TYPE_SEQPACKET, TYPE_DGRAM))
    buf = {0: rng.choice((262144, 262144, 65536, 4096, 0)), 1: rng.choice((262144, 65536, 4096))}
    tx = {0: 0, 1: 0}
    fwd = {0: 0, 1: 0}
    ends = {0: (c_cid, c_port, s_cid, s_port), 1: (s_cid, s_port, c_cid, c_port)}
    frames = []

    def pkt(side, op, payload=b"", flags=0):
        src_cid, src_port, dst_cid, dst_port = ends[side]
        frames.append(frame_bytes(src_cid, dst_cid, src_port, dst_port, op, vtype, flags,
                                  buf[side], fwd[side] & 0xFFFFFFFF, payload))

    pkt(0, OP_REQUEST)
    if rng.random() < 0.1:
        pkt(1, OP_RST)      # refused
        return frames
    pkt(1, OP_RESPONSE)
    for _ in range(rng.randrange(1, 6)):
        side = rng.randrange(2)
        data = app_stream(rng, s_port)
        pieces = split(rng, data)
        for n, piece in enumerate(pieces):
            flags = 0
            if vtype == TYPE_SEQPACKET and n == len(pieces) - 1:
                flags = rng.choice((1, 1, 3))
            pkt(side, OP_RW, piece, flags)
            tx[side] += len(piece)
            if rng.random() < 0.5:  # the peer reads some
                fwd[1 - side] = tx[side] if rng.random() < 0.7 else tx[side] - len(piece)
            if rng.random() < 0.2:
                pkt(1 - side, OP_CREDIT_UPDATE)
            if rng.random() < 0.03:
                pkt(side, OP_CREDIT_REQUEST)
                pkt(1 - side, OP_CREDIT_UPDATE)
    closer = rng.randrange(2)
    r = rng.random()
    if r < 0.6:
        pkt(closer, OP_SHUTDOWN, flags=rng.choice((3, 3, 1, 2)))
        pkt(1 - closer, OP_RST)
        if rng.random() < 0.3:
            pkt(closer, OP_RST)
    elif r < 0.8:
        pkt(closer, OP_RST)
    return frames  # otherwise left open


def perturb(rng, frames):
    """Drops, duplicates, swaps, damages and truncates some frames of a sequence."""
    out = []
    for frame in frames:
        r = rng.random()
        if r < 0.04:
            continue                                      # lost
        if r < 0.08:
            out.append(frame)                             # captured twice
        elif r < 0.12 and out:
            out.insert(len(out) - 1, frame)               # out of order
            continue
        elif r < 0.18:
            frame = damage_field(rng, frame)
        elif r < 0.21:
            frame = frame[:rng.randrange(0, len(frame) + 1)]
        elif r < 0.23:
            frame = frame + random_payload(rng, rng.randrange(1, 5000))  # excess (vhost bug)
        out.append(frame)
    return out


FIELDS = (  # (offset, struct format, interesting values)
    (0, "<Q", CID_VALUES), (8, "<Q", CID_VALUES), (16, "<I", U32_VALUES), (20, "<I", U32_VALUES),
    (24, "<H", U16_VALUES), (26, "<H", (0, 1, 2, 3, 0xFFFF)), (28, "<H", (0, 1, 43, 44, 45, 76, 0xFFFF)),
    (30, "<H", (0, 1, 0xFFFF)),
    (32, "<Q", CID_VALUES), (40, "<Q", CID_VALUES), (48, "<I", U32_VALUES), (52, "<I", U32_VALUES),
    (56, "<I", U32_VALUES), (60, "<H", (0, 1, 2, 3, 4, 0xFFFF)), (62, "<H", U16_VALUES),
    (64, "<I", (0, 1, 2, 3, 4, 0xFFFFFFFF)), (68, "<I", U32_VALUES), (72, "<I", U32_VALUES))


def damage_field(rng, frame):
    frame = bytearray(frame)
    for _ in range(rng.randrange(1, 3)):
        off, fmt, values = rng.choice(FIELDS)
        size = struct.calcsize(fmt)
        if off + size <= len(frame):
            struct.pack_into(fmt, frame, off, pick(rng, values, size * 8))
    return bytes(frame)


def random_frame(rng):
    """A packet whose every header field is chosen at random (often an edge value)."""
    transport = pick(rng, (0, 1, 2, 2, 2, 2, 3, 0xFFFF), 16)
    trans_len = rng.choice((44, 44, 44, 0, 43, 45, 60, rng.randrange(0, 200), 0xFFFF, rng.getrandbits(16)))
    plen = rng.choice((0, 0, 1, 2, 10, 100, 1500, 4096, 65536, 70000, rng.randrange(0, 300)))
    payload = random_payload(rng, plen)
    vlen = rng.choice((plen, plen, plen + 1, max(plen - 1, 0), 0, 0xFFFFFFFF, rng.getrandbits(32),
                       rng.randrange(0, 70000)))
    mon = MON_HDR.pack(pick(rng, CID_VALUES, 64), pick(rng, CID_VALUES, 64), pick(rng, U32_VALUES, 32),
                       pick(rng, U32_VALUES, 32), pick(rng, U16_VALUES, 16), transport, trans_len,
                       rng.choice((0, 0, 0, 1, 0xFFFF)))
    virtio = VIRTIO_HDR.pack(pick(rng, CID_VALUES, 64), pick(rng, CID_VALUES, 64),
                             pick(rng, U32_VALUES, 32), pick(rng, U32_VALUES, 32), vlen,
                             pick(rng, (1, 2, 3, 0, 4), 16), pick(rng, U16_VALUES, 16),
                             pick(rng, (0, 1, 2, 3, 4), 32), pick(rng, U32_VALUES, 32),
                             pick(rng, U32_VALUES, 32))
    if transport == TRANS_VIRTIO and rng.random() < 0.9:
        extra = random_payload(rng, max(0, trans_len - 44)) if trans_len < 300 else b""
        frame = mon + virtio + extra + payload
    else:
        frame = mon + random_payload(rng, trans_len if trans_len < 300 else rng.randrange(0, 100)) + payload
    return frame


def generate_capture(rng, path):
    """A capture of random packets and perturbed connections; returns the packet count."""
    frames = []
    target = rng.randrange(50, 600)
    open_conns = []
    while len(frames) < target:
        r = rng.random()
        if r < 0.25:
            frames.append(random_frame(rng))
        elif r < 0.3:
            frames.append(random_payload(rng, rng.randrange(0, 120)))          # not vsock at all
        elif r < 0.35 and frames:
            frames.append(rng.choice(frames)[:rng.randrange(0, 90)])           # truncated copy
        else:
            # Connections interleaved; sometimes on the ports of an earlier one (port reuse),
            # sometimes starting in the middle (capture started late).
            ports = None
            if open_conns and rng.random() < 0.3:
                ports = rng.choice(open_conns)
            conn = connection(rng, ports=ports[1] if ports else None, cids=ports[0] if ports else None)
            if rng.random() < 0.1:
                conn = conn[rng.randrange(0, len(conn)):]
            conn = perturb(rng, conn)
            if len(conn) > 2:
                c = conn[0]
                if len(c) >= 24:
                    cids = struct.unpack_from("<QQ", c, 0)
                    prts = struct.unpack_from("<II", c, 16)
                    open_conns.append((cids, prts))
            # interleave with what came before
            if frames and rng.random() < 0.7:
                merged, i, j = [], 0, 0
                tail = frames[-min(len(frames), 50):]
                head = frames[:len(frames) - len(tail)]
                while i < len(tail) or j < len(conn):
                    if j >= len(conn) or (i < len(tail) and rng.random() < 0.5):
                        merged.append(tail[i])
                        i += 1
                    else:
                        merged.append(conn[j])
                        j += 1
                frames = head + merged
            else:
                frames.extend(conn)
    records = []
    for frame in frames:
        if rng.random() < 0.03 and len(frame) > 0:  # the capture cut it (snaplen): caplen < len
            records.append((frame[:rng.randrange(0, len(frame))], len(frame)))
        else:
            records.append(frame)
    write_pcap(path, records)
    return len(records)


# --------------------------------------------------------------------------
# Running tshark
# --------------------------------------------------------------------------

class Runner:
    def __init__(self, plugin, abi, timeout):
        self.upstream = []  # (run, capture, problem): dissector bugs of Wireshark's own dissectors
        self.setup = vsocktest.Tshark(plugin, abi)
        self.timeout = timeout
        self.work = self.setup.scratch
        self.passes = None

    def cleanup(self):
        self.setup.cleanup()

    def env(self):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.setup.home,
            "TZ": "UTC",
            "LC_ALL": "C.UTF-8",
            "WIRESHARK_PLUGIN_DIR": self.setup.plugin_dir,
        }
        env.update(FUZZ_ENV)
        for name in PASSTHROUGH_ENV:
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def tshark(self, args):
        """Returns (problem or None, returncode, stderr)."""
        cmd = ["tshark"] + list(args)
        if os.getuid() == 0 or os.getgid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        try:
            proc = subprocess.run(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired as e:
            return f"timeout after {self.timeout} s (hang?)", None, (e.stderr or b"").decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        out = proc.stdout
        text = out.decode("utf-8", "replace")
        protocols = {p.strip() for p in re.findall(r"Dissector bug, protocol ([^,:\]]+)", err + text)}
        ours = sorted(p for p in protocols if p.lower() in OUR_PROTOCOLS)
        theirs = sorted(p for p in protocols if p.lower() not in OUR_PROTOCOLS)
        if ours:
            return f"Dissector bug, protocol {', '.join(ours)}", proc.returncode, err
        # Wireshark's own dissectors, reached through the payload hand-off (an upstream
        # bug; checked by replaying the payload over TCP): their lines are set aside and
        # everything else is still checked, so they cannot hide a crash of ours.
        upstream = None
        raw_err = err
        if theirs:
            upstream = f"{UPSTREAM}Dissector bug in Wireshark's {', '.join(theirs)} dissector"
            err = "\n".join(line for line in err.splitlines() if "Dissector bug, protocol" not in line)
            out = re.sub(rb"\[Dissector bug, protocol [^\]]*\]", b"", out)
        where = ""
        if proc.returncode < 0:
            return f"killed by signal {-proc.returncode}{where}", proc.returncode, err
        for pattern in FATAL_STDERR:
            if pattern in err:
                return f"'{pattern}' on stderr{where}", proc.returncode, err
        for pattern in FATAL_STDOUT:
            if pattern.encode() in out:
                return f"'{pattern}' in the dissection{where}", proc.returncode, err
        if proc.returncode != 0:
            return f"exit status {proc.returncode}", proc.returncode, err
        if upstream:
            return upstream, proc.returncode, raw_err
        return None, 0, err

    def probe(self, good_capture):
        """The pass configurations, with the optional pieces this plugin supports."""
        zhelp = self.tshark_text(["-z", "help"])
        decodes = self.tshark_text(["-G", "decodes"]) + self.tshark_text(["-G", "fields"])
        stats = ["-z", "expert", "-z", "io,phs"]
        for name in ("conv,vsock", "endpoints,vsock", "vsock,tree"):
            if re.search(r"^\s*" + re.escape(name) + r"\s*$", zhelp, re.M):
                stats += ["-z", name]
        follow = None
        if re.search(r"^\s*follow,vsock\s*$", zhelp, re.M):
            follow = "vsock"
        decode_as = []
        if "vsock.port" in decodes:
            for port, proto in DECODE_AS:
                decode_as += ["-d", f"vsock.port=={port},{proto}"]
        # Every payload offered to the heuristics in one of the runs (by default
        # a direction they refused at its start is not offered again).
        if "vsock.heuristics_every_packet" in self.tshark_text(["-G", "defaultprefs"]):
            decode_as += ["-o", "vsock.heuristics_every_packet:TRUE"]
        passes = [
            ("summary", ["-n"]),
            ("detail", ["-n", "-V", "-x"]),
            ("two-pass", ["-n", "-2", "-V"] + decode_as),
            ("stats", ["-n", "-2", "-q"] + stats),
            ("filter", ["-n", "-Y", "vsock.len > 0 || vsock.op == 4"]),
        ]
        self.passes = passes
        self.follow = follow
        for name, args in passes:
            problem, _, err = self.tshark(args + ["-r", good_capture])
            if problem:
                raise SystemExit(f"fuzz: the '{name}' run fails on a clean capture ({problem}):\n{err[-2000:]}")
        return passes

    def tshark_text(self, args):
        cmd = ["tshark"] + args
        if os.getuid() == 0 or os.getgid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        # `-z help` writes its list on stderr
        proc = subprocess.run(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=self.timeout)
        return proc.stdout.decode("utf-8", "replace")

    def check(self, capture, rng=None):
        """Runs every pass over capture; returns a list of (pass name, args, problem, stderr)."""
        failures = []
        runs = 0
        for name, args in self.passes:
            extra = []
            if name == "stats" and self.follow:
                # Follow one stream (the first few indexes, in every mode).
                index = rng.randrange(0, 4) if rng else 0
                mode = rng.choice(("ascii", "hex", "raw", "yaml")) if rng else "hex"
                extra = ["-z", f"follow,{self.follow},{mode},{index}"]
            full = args + extra + ["-r", capture]
            problem, rc, err = self.tshark(full)
            runs += 1
            if problem and problem.startswith(UPSTREAM):
                self.upstream.append((name, capture, problem, full, err))
            elif problem:
                failures.append((name, full, problem, err))
        return failures, runs


# --------------------------------------------------------------------------
# Minimising a failing capture
# --------------------------------------------------------------------------

def write_subset(src, dst, indexes):
    records = read_pcap(src)
    with open(dst, "wb") as f:
        f.write(pcap_header())
        for i in indexes:
            f.write(b"".join(records[i]))
    os.chmod(dst, 0o644)


def minimise(runner, capture, args, out_path, budget_s=60):
    """Smallest prefix that still fails with these args, then the last packet alone
    if that fails by itself. Returns (path, description) or None."""
    deadline = time.monotonic() + budget_s
    n = len(read_pcap(capture))
    tmp = out_path + ".tmp"
    rest = [a for a in args if a != capture]
    r_index = rest.index("-r") if "-r" in rest else None
    if r_index is not None:
        del rest[r_index]

    def fails(indexes):
        write_subset(capture, tmp, indexes)
        problem, _, _ = runner.tshark(rest + ["-r", tmp])
        return problem is not None

    lo, hi = 1, n           # the first hi packets fail
    if not fails(list(range(n))):
        return None
    while lo < hi and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        if fails(list(range(mid))):
            hi = mid
        else:
            lo = mid + 1
    chosen, what = list(range(hi)), f"first {hi} of {n} packets"
    if hi > 1 and fails([hi - 1]):
        chosen, what = [hi - 1], f"packet {hi} of {n} alone"
    write_subset(capture, out_path, chosen)
    os.remove(tmp)
    return out_path, what


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------

def corpus_files(work):
    """The captures to mutate: each real, reference and regression capture, and the
    synthetic ones (one packet each, mostly) merged into one."""
    files, small = [], []
    for path in sorted(glob.glob(os.path.join(REPO, "test-captures", "**", "*.pcap"), recursive=True)):
        with open(path, "rb") as f:
            head = f.read(24)
        if len(head) < 24 or struct.unpack("<I" if head[:4] == b"\xd4\xc3\xb2\xa1" else ">I", head[20:24])[0] != LINKTYPE_VSOCK:
            continue  # not vsock (a few are Ethernet, for comparison)
        (small if len(read_pcap(path)) < 5 else files).append(path)
    if small:
        merged = os.path.join(work, "small-captures.pcap")
        records = [r for path in small for r in read_pcap(path)]
        with open(merged, "wb") as f:
            f.write(pcap_header())
            for header, data in records:
                f.write(header + data)
        os.chmod(merged, 0o644)
        files.append(merged)
    return files


def count_mutated(original, mutated):
    a, b = read_pcap(original), read_pcap(mutated)
    return sum(1 for x, y in zip(a, b) if x[1] != y[1]), len(b)


def sub_seed(seed, iteration):
    return int.from_bytes(hashlib.sha256(f"{seed}:{iteration}".encode()).digest()[:8], "little")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.iterations = 0
        self.mutated_files = 0
        self.mutated_packets = 0
        self.mutated_total_packets = 0
        self.generated_files = 0
        self.generated_packets = 0
        self.tshark_runs = 0
        self.failures = []
        self.upstream = []

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "lock"}


def iteration(runner, args, corpus, it, stats):
    seed = sub_seed(args.seed, it)
    rng = random.Random(seed)
    work = os.path.join(runner.work, f"it{it}")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    capture = os.path.join(work, "input.pcap")
    kind = "mutate" if it % 2 == 0 else "generate"
    if kind == "mutate":
        source = rng.choice(corpus)
        if source == "GENERATED":
            source = os.path.join(work, "source.pcap")
            generate_capture(rng, source)
        rate = rng.choice((args.rate, args.rate, args.rate / 4, args.rate * 2))
        offset = rng.choice((0, 0, 0, 32, 76))
        cmd = ["editcap", "-F", "pcap", "-E", str(rate), "-o", str(offset), "--seed", str(seed % 2**31),
               source, capture]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(capture, 0o644)
        changed, total = count_mutated(source, capture)
        label = os.path.relpath(source, REPO) if source.startswith(REPO) else os.path.basename(source)
        what = f"mutate {label} -E {rate} -o {offset} --seed {seed % 2**31}"
    else:
        total = generate_capture(rng, capture)
        changed = 0
        what = "generate"
    n_upstream = len(runner.upstream)
    failures, runs = runner.check(capture, rng)
    kept = []
    with stats.lock:
        mine = [u for u in runner.upstream[n_upstream:] if u[1] == capture]
    if mine:
        # Wireshark's own dissector bug: kept apart (upstream-*), not a failure.
        os.makedirs(args.keep_dir, exist_ok=True)
        base = os.path.join(args.keep_dir, f"upstream-seed{args.seed}-it{it}-{kind}")
        shutil.copy(capture, base + ".pcap")
        with open(base + ".txt", "w") as f:
            f.write(f"iteration {it} of seed {args.seed} ({what})\n")
            for name, _, problem, full, err in mine:
                f.write(f"\n=== run '{name}': {problem}\n")
                f.write("command: tshark " + " ".join(full).replace(capture, base + ".pcap") + "\n")
                f.write(err[-5000:])
        with stats.lock:
            stats.upstream.append({"iteration": it, "problem": mine[0][2], "input": base + ".pcap"})
    if failures:
        os.makedirs(args.keep_dir, exist_ok=True)
        base = os.path.join(args.keep_dir, f"fuzz-seed{args.seed}-it{it}-{kind}")
        shutil.copy(capture, base + ".pcap")
        mini = None
        if not args.no_minimise:
            try:
                mini = minimise(runner, capture, failures[0][1], base + "-min.pcap")
            except Exception as e:  # keep the whole input whatever happens
                mini = (None, f"minimising failed: {e}")
        with open(base + ".txt", "w") as f:
            f.write(f"iteration {it} of seed {args.seed} ({what})\n")
            f.write(f"replay: tools/fuzz.py --seed {args.seed} --iterations {it}..{it}\n")
            f.write(f"   or: tools/fuzz.py --replay {base}.pcap\n")
            if mini:
                f.write(f"minimised: {mini[0]} ({mini[1]}, with the '{failures[0][0]}' run)\n")
            for name, full, problem, err in failures:
                f.write(f"\n=== run '{name}': {problem}\n")
                f.write("command: tshark " + " ".join(full).replace(capture, base + ".pcap") + "\n")
                f.write(err[-20000:])
        kept.append({"iteration": it, "kind": kind, "what": what,
                     "runs": [(name, problem) for name, _, problem, _ in failures],
                     "input": base + ".pcap", "minimised": mini[0] if mini else None,
                     "report": base + ".txt"})
    with stats.lock:
        stats.iterations += 1
        stats.tshark_runs += runs
        if kind == "mutate":
            stats.mutated_files += 1
            stats.mutated_packets += changed
            stats.mutated_total_packets += total
        else:
            stats.generated_files += 1
            stats.generated_packets += total
        stats.failures.extend(kept)
    if not args.verbose and not kept:
        shutil.rmtree(work, ignore_errors=True)
    return it, what, total, changed, kept


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120, help="stop starting iterations after this (default 120)")
    ap.add_argument("--seed", type=int, default=None, help="master seed (default: random, printed)")
    ap.add_argument("--iterations", default=None,
                    help="A..B: run exactly these iterations (replay), ignoring --seconds")
    ap.add_argument("--keep-dir", default=os.path.join(tempfile.gettempdir(), "vsock-fuzz-failures"),
                    help="where failing inputs are kept (default %(default)s)")
    ap.add_argument("--plugin", default=os.environ.get("VSOCK_PLUGIN", os.path.join(REPO, "build", "vsock.so")))
    ap.add_argument("--abi", default=os.environ.get("VSOCK_WIRESHARK_ABI"))
    ap.add_argument("--rate", type=float, default=0.02, help="editcap -E error probability (default 0.02)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=300, help="per tshark run (default 300 s)")
    ap.add_argument("--replay", metavar="PCAP", help="only run the checks on this capture")
    ap.add_argument("--stats-json", help="write the statistics here")
    ap.add_argument("--max-failures", type=int, default=5, help="stop after this many failing inputs")
    ap.add_argument("--no-minimise", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per iteration, keep all inputs")
    args = ap.parse_args(argv)

    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    if args.abi is None:
        version = subprocess.run(["tshark", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 check=True).stdout.decode()
        args.abi = ".".join(re.search(r"TShark \(Wireshark\) (\d+)\.(\d+)", version).groups())
    if not os.path.exists(args.plugin):
        ap.error(f"plugin not found: {args.plugin} (build it, or give --plugin)")
    args.keep_dir = os.path.abspath(args.keep_dir)

    runner = Runner(args.plugin, args.abi, args.timeout)
    try:
        good = os.path.join(runner.work, "good.pcap")
        write_pcap(good, connection(random.Random(1)))
        runner.probe(good)
        with open(args.plugin, "rb") as f:
            sanitized = b"libasan.so" in f.read()
        tshark_path = shutil.which("tshark") or "tshark"
        sanitizer = (f"sanitizer build, tshark = {tshark_path}" if sanitized else "no sanitizer")
        print(f"fuzz: seed {args.seed}, plugin {args.plugin}, {sanitizer}", flush=True)
        print("fuzz: runs per input: " + "; ".join(
            f"{name}: tshark {' '.join(a)}" for name, a in runner.passes), flush=True)

        if args.replay:
            replay = os.path.join(runner.work, "replay.pcap")
            shutil.copy(args.replay, replay)
            os.chmod(replay, 0o644)
            failures, runs = runner.check(replay, random.Random(args.seed))
            for name, _, problem, full, err in runner.upstream:
                print(f"NOT OURS {name}: {problem[len(UPSTREAM):]}\n  tshark {' '.join(full)}\n{err[-1500:]}")
            for name, full, problem, err in failures:
                print(f"FAIL {name}: {problem}\n  tshark {' '.join(full)}\n{err[-3000:]}")
            print(f"fuzz: replay {args.replay}: {runs} runs, {len(failures)} failed")
            return 1 if failures else 0

        corpus = corpus_files(runner.work)
        corpus += ["GENERATED"] * max(2, len(corpus) // 4)
        stats = Stats()
        start = time.monotonic()
        if args.iterations:
            a, b = (int(x) for x in args.iterations.split(".."))
            todo = iter(range(a, b + 1))
            deadline = None
        else:
            todo = iter(range(0, 1 << 62))
            deadline = start + args.seconds
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            running = set()
            stop = False
            while True:
                while not stop and len(running) < args.jobs:
                    if deadline is not None and time.monotonic() >= deadline:
                        stop = True
                        break
                    if len(stats.failures) >= args.max_failures:
                        stop = True
                        break
                    it = next(todo, None)
                    if it is None:
                        stop = True
                        break
                    running.add(pool.submit(iteration, runner, args, corpus, it, stats))
                if not running:
                    break
                done, running = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    it, what, total, changed, kept = fut.result()
                    if args.verbose:
                        print(f"  it {it}: {what}: {total} packets ({changed} mutated): "
                              f"{'FAIL' if kept else 'ok'}", flush=True)
                    for k in kept:
                        runs = "; ".join(f"{name}: {problem}" for name, problem in k["runs"])
                        print(f"FAIL iteration {it} ({what}): {runs}\n"
                              f"  input {k['input']}\n  report {k['report']}"
                              + (f"\n  minimised {k['minimised']}" if k['minimised'] else ""), flush=True)
                running = set(running)
        elapsed = time.monotonic() - start
        d = stats.as_dict()
        d.update(seed=args.seed, seconds=round(elapsed, 1))
        print(f"fuzz: {stats.iterations} inputs in {elapsed:.0f} s (seed {args.seed}): "
              f"{stats.mutated_files} mutated captures ({stats.mutated_packets} of "
              f"{stats.mutated_total_packets} packets changed by editcap -E), "
              f"{stats.generated_files} generated captures ({stats.generated_packets} packets), "
              f"{stats.tshark_runs} tshark runs, {len(stats.failures)} failing"
              + (f", {len(stats.upstream)} inputs hit a bug of Wireshark's own dissectors (not failing)"
                 if stats.upstream else ""), flush=True)
        for u in stats.upstream:
            print(f"fuzz: not ours (iteration {u['iteration']}): {u['problem'][len(UPSTREAM):]}; "
                  f"input kept in {u['input']}")
        if args.stats_json:
            with open(args.stats_json, "w") as f:
                json.dump(d, f, indent=2)
        if stats.failures:
            print(f"fuzz: failing inputs kept in {args.keep_dir}")
        return 1 if stats.failures else 0
    finally:
        runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
