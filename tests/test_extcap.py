"""extcap/vsockhybriddump: the hybrid vsock capture program.

A fake VMM with Firecracker's protocol (fakevmm.py) and real host programs
(python, socat, curl) talk through it over Unix sockets; the capture is
checked byte for byte per direction against what the programs sent, once by
parsing the pcap here and once through tshark's header fields. In-place mode
is checked to put every path back (inode, mode, owner) on every way out.
Nothing here needs AF_VSOCK. Tests that run the program as another user
(tshark's extcap runs as uid 65534 here, a directory it cannot write) need
root, which CI has.
"""

import contextlib
import glob
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from fakevmm import FIRST_HOST_PORT, FakeVmm, recv_all, recv_line
from vsocktest import CAPTURES, REPO

TOOL = os.path.join(REPO, "extcap", "vsockhybriddump")
INTERFACE = "vsockhybrid"
SYNTHETIC = 1 << 31                 # the program's made-up ports start here
CONNECT, DISCONNECT, PAYLOAD = 1, 2, 4
NOBODY = 65534
IS_ROOT = os.geteuid() == 0
TIMEOUT = 30                        # seconds any single wait may take (2 shared cores)


# ---- the capture file ---------------------------------------------------------

def read_pcap(path):
    """(linktype, packets); each packet a dict of the vsockmon header fields
    and the payload, parsed with struct."""
    with open(path, "rb") as f:
        data = f.read()
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4 and (major, minor) == (2, 4)     # microseconds, little-endian
    packets, offset = [], 24
    while offset < len(data):
        assert offset + 16 <= len(data), "a packet record is cut short"
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16:offset + 16 + caplen]
        assert len(frame) == caplen == origlen, "a packet is cut short"
        src_cid, dst_cid, src_port, dst_port, op, trans, trans_len, reserved = \
            struct.unpack_from("<QQIIHHHH", frame, 0)
        packets.append({"ts": sec * 1_000_000 + usec, "src_cid": src_cid, "dst_cid": dst_cid,
                        "src_port": src_port, "dst_port": dst_port, "op": op, "trans": trans,
                        "trans_len": trans_len, "reserved": reserved, "payload": frame[32:]})
        offset += 16 + caplen
    return linktype, packets


def check_headers(packets, guest_cid):
    """What every packet of this program must be: transport "no info",
    no transport header, payload only on PAYLOAD, host CID 2 on one side."""
    for p in packets:
        assert (p["trans"], p["trans_len"], p["reserved"]) == (1, 0, 0)
        assert {p["src_cid"], p["dst_cid"]} == {2, guest_cid}
        assert p["op"] in (CONNECT, DISCONNECT, PAYLOAD)
        assert (p["op"] == PAYLOAD) == (len(p["payload"]) > 0)


class Conversation:
    """One connection's packets: the ops in order, with their direction
    ("h" host to guest, "g" guest to host), and each direction's bytes."""

    def __init__(self, host_port, guest_port):
        self.host_port, self.guest_port = host_port, guest_port
        self.ops = []
        self.last_ts = 0
        self.to_guest = bytearray()
        self.to_host = bytearray()

    def add(self, p):
        # Within a connection, packets are in time order (across connections
        # not quite: a request is written when its answer comes).
        assert not self.ops or p["ts"] >= self.last_ts
        self.last_ts = p["ts"]
        direction = "h" if p["src_cid"] == 2 else "g"
        if not self.ops or p["op"] != PAYLOAD or self.ops[-1] != (direction, PAYLOAD):
            self.ops.append((direction, p["op"]))
        if p["op"] == PAYLOAD:
            (self.to_guest if direction == "h" else self.to_host).extend(p["payload"])


def controls(conv):
    """A conversation's ops without its payloads (whose interleaving depends
    on timing)."""
    return [op for op in conv.ops if op[1] != PAYLOAD]


def conversations(packets):
    """Conversations in order of first packet (runs of PAYLOAD one way are one
    op); a CONNECT on ports whose connection had both its CONNECTs starts a
    new one (a restarted VMM gives the same host ports again)."""
    result, current = [], {}
    for p in packets:
        host_port, guest_port = ((p["src_port"], p["dst_port"]) if p["src_cid"] == 2
                                 else (p["dst_port"], p["src_port"]))
        key = (host_port, guest_port)
        conv = current.get(key)
        if conv is None or (p["op"] == CONNECT and [op for _, op in conv.ops].count(CONNECT) == 2):
            conv = current[key] = Conversation(host_port, guest_port)
            result.append(conv)
        conv.add(p)
    return result


def tshark_matches(tshark, path, packets):
    """tshark (with the plugin) reads the same header fields and payloads."""
    copy = os.path.join(tshark.scratch, f"extcap-{os.getpid()}-{time.monotonic_ns()}.pcap")
    shutil.copy(path, copy)
    os.chmod(copy, 0o644)
    rows = tshark.fields(copy, ["vsock.src_cid", "vsock.dst_cid", "vsock.src_port", "vsock.dst_port",
                                "vsock.op", "vsock.trans", "vsock.trans_len", "vsock.payload"])
    expected = [[str(p["src_cid"]), str(p["dst_cid"]), str(p["src_port"]), str(p["dst_port"]),
                 str(p["op"]), "1", "0", p["payload"].hex()] for p in packets]
    assert rows == expected
    os.unlink(copy)


# ---- files and processes --------------------------------------------------------

@pytest.fixture
def work():
    """A fresh directory (every user may enter it) for sockets and captures."""
    path = tempfile.mkdtemp(prefix="vsockhybrid-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def snapshot(directory):
    """Name -> (type, inode, mode, uid, gid) of every entry."""
    result = {}
    for name in os.listdir(directory):
        st = os.lstat(os.path.join(directory, name))
        result[name] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    return result


def wait_for(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def as_nobody_cmd(cmd):
    if IS_ROOT:
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] + cmd
    return cmd


class Tool:
    """The capture program as a process of its own."""

    def __init__(self, args, nobody=False):
        self.errfile = tempfile.TemporaryFile()
        cmd = [TOOL] + args
        self.proc = subprocess.Popen(as_nobody_cmd(cmd) if nobody else cmd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.errfile)

    def stderr(self):
        self.errfile.seek(0)
        return self.errfile.read().decode("utf-8", "replace")

    def wait_ready(self):
        wait_for(lambda: "vsockhybriddump: capturing" in self.stderr() or self.proc.poll() is not None,
                 "the program to start")
        assert self.proc.poll() is None, f"the program exited: {self.stderr()}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()

    def wait(self):
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def announced_pid(self, what):
        """The pid the program announced for its guardian or background
        relay (the tests' chroots have no /proc to look it up)."""
        match = re.search(what + r" (\d+)", self.stderr())
        assert match, self.stderr()
        return int(match.group(1))


def gone(pid):
    """Whether process PID has ended and been reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- programs on both sides ------------------------------------------------------

class GuestServer:
    """A guest program listening on a vsock port (a Unix socket for the fake
    VMM, or a host program's <socket>_<port> listener). HANDLER(sock) returns
    (bytes received, bytes sent); each connection's pair is kept in order."""

    def __init__(self, path, handler):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(128)
        self.handler = handler
        self.records = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(TIMEOUT)
            try:
                result = self.handler(conn)
            except OSError as exc:
                result = ("error", str(exc))
        with self.lock:
            self.records.append(result)

    def close(self):
        """Stops listening now (a plain close would wait for the thread in accept())."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def recv_exactly(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def reply_after_eof(conn):
    """Reads until the peer's half-close, then answers and closes."""
    received = recv_all(conn)
    sent = b"guest read %d bytes: " % len(received) + received[::-1]
    conn.sendall(sent)
    return received, sent


def echo(conn):
    """Echoes every chunk as it comes, upper-cased; closes at the peer's end."""
    received, sent = bytearray(), bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return bytes(received), bytes(sent)
        received += chunk
        sent += chunk.upper()
        conn.sendall(chunk.upper())


def speak_first(conn):
    """Sends a greeting and shuts its side, then reads until the peer's end."""
    sent = b"hello from the guest\n" * 3
    conn.sendall(sent)
    conn.shutdown(socket.SHUT_WR)
    return recv_all(conn), sent


def http_server(conn):
    """A tiny HTTP server: reads one request, answers, closes."""
    request = bytearray()
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(65536)
        if not chunk:
            break
        request += chunk
    body = b"served by the host program\n" * 50
    sent = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    conn.sendall(sent)
    return bytes(request), sent


def host_connect(path, port, payload, pieces=None, line=None, half_close=True):
    """A python host program: CONNECT, the payload, a half-close, then
    everything until the end. Returns (the OK line, the bytes after it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    with sock:
        sock.connect(path)
        for piece in pieces or [(line or b"CONNECT %d\n" % port) + payload]:
            sock.sendall(piece)
            if pieces:
                time.sleep(0.02)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = recv_all(sock)
    ok, _, rest = received.partition(b"\n")
    return ok + b"\n" if _ else ok, rest


class Setup:
    """A fake Firecracker at WORK/v.sock, its guest at WORK/guest/."""

    def __init__(self, work, guest_connect_ports=(), silent_ports=(), ok_port="host"):
        self.work = work
        self.uds = os.path.join(work, "v.sock")
        self.guest = os.path.join(work, "guest")
        os.mkdir(self.guest)
        self.servers = []
        self.vmm = FakeVmm(self.uds, self.guest, guest_connect_ports, silent_ports, ok_port)

    def guest_listen(self, port, handler):
        server = GuestServer(os.path.join(self.guest, f"listen_{port}"), handler)
        self.servers.append(server)
        return server

    def host_listen(self, port, handler):
        server = GuestServer(f"{self.uds}_{port}", handler)
        self.servers.append(server)
        return server

    def close(self):
        for server in self.servers:
            server.close()
        self.vmm.stop()


@pytest.fixture
def setup(work):
    created = []

    def make(**kwargs):
        created.append(Setup(work, **kwargs))
        return created[-1]
    yield make
    for s in created:
        s.close()


def start_proxy(s, extra=(), guest_cid=3):
    capture = os.path.join(s.work, "capture.pcap")
    proxy = os.path.join(s.work, "proxy.sock")
    tool = Tool(["--uds", s.uds, "--guest-cid", str(guest_cid), "--proxy", proxy, "-w", capture]
                + list(extra))
    tool.wait_ready()
    return tool, proxy, capture


def start_in_place(s, extra=()):
    capture = os.path.join(s.work, "capture.pcap")
    tool = Tool(["--uds", s.uds, "--in-place", "-w", capture] + list(extra))
    tool.wait_ready()
    return tool, capture


# ---- extcap conformance -----------------------------------------------------------

def run_tool(args, nobody=False):
    cmd = [TOOL] + args
    return subprocess.run(as_nobody_cmd(cmd) if nobody else cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)


def test_extcap_interfaces():
    """--extcap-interfaces (with Wireshark's --extcap-version) lists one interface."""
    proc = run_tool(["--extcap-interfaces", "--extcap-version=4.0"])
    assert proc.returncode == 0 and proc.stderr == b""
    lines = proc.stdout.decode().splitlines()
    assert lines[0].startswith("extcap {version=0.1.0}{display=")
    assert lines[1:] == ["interface {value=vsockhybrid}{display=Hybrid vsock: Firecracker, "
                         "cloud-hypervisor, vhost-device-vsock (Unix socket relay)}"]


def test_extcap_dlts():
    """--extcap-dlts offers LINKTYPE_VSOCK (271) only; another interface is an error."""
    proc = run_tool(["--extcap-interface", INTERFACE, "--extcap-dlts"])
    assert proc.returncode == 0 and proc.stderr == b""
    assert proc.stdout.decode().splitlines() == [
        "dlt {number=271}{name=VSOCK}{display=Linux vsock (vsockmon header)}"]
    proc = run_tool(["--extcap-interface", "eth0", "--extcap-dlts"])
    assert proc.returncode == 1 and proc.stdout == b"" and b"unknown interface" in proc.stderr


def test_extcap_config():
    """--extcap-config: the options Wireshark's dialog edits, in order."""
    proc = run_tool(["--extcap-interface", INTERFACE, "--extcap-config"])
    assert proc.returncode == 0 and proc.stderr == b""
    lines = proc.stdout.decode().splitlines()
    assert [line.split("}")[0] for line in lines] == [f"arg {{number={n}" for n in range(4)]
    calls = [line.split("{call=")[1].split("}")[0] for line in lines]
    types = [line.split("{type=")[1].split("}")[0] for line in lines]
    assert calls == ["--uds", "--guest-cid", "--proxy", "--in-place"]
    assert types == ["string", "unsigned", "string", "boolflag"]
    assert "{required=true}" in lines[0] and "{default=3}" in lines[1]
    assert "{range=3,4294967294}" in lines[1]


def test_extcap_capture_filter_refused():
    """A capture filter cannot be honoured: Wireshark's validation call says so."""
    proc = run_tool(["--extcap-interface", INTERFACE, "--extcap-capture-filter", "port 52"])
    assert proc.returncode == 0 and proc.stdout.strip() == b"capture filters are not supported"
    proc = run_tool(["--extcap-interface", INTERFACE, "--extcap-capture-filter", ""])
    assert proc.returncode == 0 and proc.stdout == b""


def extcap_folder(work):
    """A folder holding only this program, as Wireshark's extcap folder would."""
    folder = os.path.join(work, "extcap")
    os.mkdir(folder)
    shutil.copy(TOOL, folder)
    os.chmod(folder, 0o755)
    os.chmod(os.path.join(folder, "vsockhybriddump"), 0o755)
    return folder


def tshark_env(tshark, folder):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tshark.home, "TZ": "UTC",
            "LC_ALL": "C.UTF-8", "WIRESHARK_PLUGIN_DIR": tshark.plugin_dir,
            "WIRESHARK_EXTCAP_DIR": folder}


def test_tshark_lists_interface(tshark, work):
    """tshark -D lists the interface and -G defaultprefs its options (as uid
    65534: tshark ignores WIRESHARK_EXTCAP_DIR as root, like the plugin folder)."""
    env = tshark_env(tshark, extcap_folder(work))
    out = subprocess.run(as_nobody_cmd(["tshark", "-D"]), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120, check=True).stdout.decode()
    assert [line.split(". ", 1)[1] for line in out.splitlines() if INTERFACE in line] == [
        "vsockhybrid (Hybrid vsock: Firecracker, cloud-hypervisor, vhost-device-vsock "
        "(Unix socket relay))"]
    prefs = subprocess.run(as_nobody_cmd(["tshark", "-G", "defaultprefs"]), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                           check=True).stdout.decode()
    for pref in ("#extcap.vsockhybrid.uds: ", "#extcap.vsockhybrid.guestcid: 3",
                 "#extcap.vsockhybrid.proxy: ", "#extcap.vsockhybrid.inplace: false"):
        assert pref in prefs.splitlines()


@pytest.mark.parametrize("mode", ["proxy", "in-place"])
def test_tshark_live_capture(tshark, setup, work, mode):
    """tshark -i vsockhybrid (through dumpcap, options as extcap preferences)
    relays a host program and captures it; stopping (-c) removes the proxy
    socket, or puts the VMM's socket back."""
    s = setup()
    guest = s.guest_listen(52, reply_after_eof)
    out_dir = os.path.join(work, "out")
    os.mkdir(out_dir)
    proxy = os.path.join(work, "proxy.sock")
    if IS_ROOT:     # the extcap runs as uid 65534, as tshark does
        os.chown(s.uds, NOBODY, NOBODY)
        os.chown(out_dir, NOBODY, NOBODY)
        os.chown(work, NOBODY, NOBODY)
    original = os.lstat(s.uds)
    capture = os.path.join(out_dir, "live.pcap")
    interpose = (["-o", f"extcap.{INTERFACE}.proxy:{proxy}"] if mode == "proxy"
                 else ["-o", f"extcap.{INTERFACE}.inplace:true"])
    cmd = ["tshark", "-i", INTERFACE, "-o", f"extcap.{INTERFACE}.uds:{s.uds}",
           "-o", f"extcap.{INTERFACE}.guestcid:7"] + interpose + ["-c", "6", "-F", "pcap", "-w", capture]
    proc = subprocess.Popen(as_nobody_cmd(cmd), env=tshark_env(tshark, extcap_folder(work)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if mode == "proxy":
            wait_for(lambda: os.path.exists(proxy) or proc.poll() is not None, "the proxy socket")
        else:
            wait_for(lambda: os.lstat(s.uds).st_ino != original.st_ino or proc.poll() is not None,
                     "the VMM's socket to be taken over")
        ok, reply = host_connect(proxy if mode == "proxy" else s.uds, 52, b"through tshark and dumpcap")
        _, err = proc.communicate(timeout=TIMEOUT * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert "6 packets captured" in err.decode()
    wait_for(lambda: not os.path.exists(proxy) and os.lstat(s.uds).st_ino == original.st_ino
             and sorted(os.listdir(work)) == ["extcap", "guest", "out", "v.sock"],
             "the proxy socket removed, the VMM's socket back")
    _, packets = read_pcap(capture)
    check_headers(packets, 7)
    (conv,) = conversations(packets)
    assert ok == b"OK %d\n" % FIRST_HOST_PORT
    assert (conv.host_port, conv.guest_port) == (FIRST_HOST_PORT, 52)
    assert conv.ops == [("h", CONNECT), ("g", CONNECT), ("h", PAYLOAD), ("h", DISCONNECT),
                        ("g", PAYLOAD), ("g", DISCONNECT)]
    assert bytes(conv.to_guest) == guest.records[0][0] == b"through tshark and dumpcap"
    assert bytes(conv.to_host) == guest.records[0][1] == reply


def test_capture_fifo(tshark, setup, work):
    """The issue's command: --capture --extcap-interface IF --fifo FILE --uds
    VMM --guest-cid 3 --proxy PATH relays a host program to a Firecracker-style
    VMM and writes the capture into the FIFO; SIGTERM ends it cleanly."""
    s = setup()
    guest = s.guest_listen(52, reply_after_eof)
    fifo = os.path.join(work, "fifo")
    os.mkfifo(fifo)
    proxy = os.path.join(work, "proxy.sock")
    tool = Tool(["--capture", "--extcap-interface", INTERFACE, "--fifo", fifo, "--uds", s.uds,
                 "--guest-cid", "3", "--proxy", proxy])
    received = bytearray()

    def reader():
        with open(fifo, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    return
                received.extend(chunk)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    wait_for(lambda: os.path.exists(proxy), "the proxy socket")
    payload = random.Random(1).randbytes(100000)
    ok, reply = host_connect(proxy, 52, payload)
    assert tool.stop() == 0
    thread.join(TIMEOUT)
    assert tool.stderr() == ""      # Wireshark shows anything there as an error
    assert not os.path.exists(proxy)
    path = os.path.join(work, "from-fifo.pcap")
    with open(path, "wb") as f:
        f.write(received)
    linktype, packets = read_pcap(path)
    assert linktype == 271
    check_headers(packets, 3)
    (conv,) = conversations(packets)
    assert conv.ops == [("h", CONNECT), ("g", CONNECT), ("h", PAYLOAD), ("h", DISCONNECT),
                        ("g", PAYLOAD), ("g", DISCONNECT)]
    assert bytes(conv.to_guest) == payload == guest.records[0][0]
    assert bytes(conv.to_host) == reply == guest.records[0][1]
    assert ok == b"OK %d\n" % conv.host_port
    tshark_matches(tshark, path, packets)


def test_capture_error_reaches_wireshark(work):
    """An error in capture mode: a message on stderr (Wireshark shows it), a
    non-zero exit, and the FIFO opened and closed so its reader is not left waiting."""
    fifo = os.path.join(work, "fifo")
    os.mkfifo(fifo)
    tool = Tool(["--capture", "--extcap-interface", INTERFACE, "--fifo", fifo,
                 "--uds", os.path.join(work, "missing.sock"), "--proxy", os.path.join(work, "p")])
    with open(fifo, "rb") as f:
        assert f.read() == b""
    assert tool.wait() == 1
    assert tool.stderr() == f"vsockhybriddump: {work}/missing.sock: no such socket\n"


# ---- what the capture shows -------------------------------------------------------

def test_host_initiated_half_close(tshark, setup):
    """A host program sends, half-closes, reads the guest's answer: every
    packet in order, the ports from the CONNECT line and the OK answer."""
    s = setup()
    guest = s.guest_listen(52, reply_after_eof)
    tool, proxy, capture = start_proxy(s, guest_cid=42)
    payload = b"request from the host\n" * 1000
    ok, reply = host_connect(proxy, 52, payload)
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    check_headers(packets, 42)
    (conv,) = conversations(packets)
    assert ok == b"OK %d\n" % FIRST_HOST_PORT
    assert (conv.host_port, conv.guest_port) == (FIRST_HOST_PORT, 52)
    assert conv.ops == [("h", CONNECT), ("g", CONNECT), ("h", PAYLOAD), ("h", DISCONNECT),
                        ("g", PAYLOAD), ("g", DISCONNECT)]
    assert bytes(conv.to_guest) == payload == guest.records[0][0]
    assert bytes(conv.to_host) == reply == guest.records[0][1]
    assert [p["src_cid"] for p in packets[:2]] == [2, 42]
    tshark_matches(tshark, capture, packets)


def test_guest_half_closes_first(setup):
    """The guest speaks and shuts its side first; the host still sends after it."""
    s = setup()
    guest = s.guest_listen(60, speak_first)
    tool, proxy, capture = start_proxy(s)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(proxy)
    sock.sendall(b"CONNECT 60\n")
    greeting = recv_all(sock)
    sock.sendall(b"the host answers after the guest's half-close")
    sock.close()
    wait_for(lambda: guest.records, "the guest")
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert greeting.split(b"\n", 1)[1] == guest.records[0][1] == bytes(conv.to_host)
    assert bytes(conv.to_guest) == guest.records[0][0] == b"the host answers after the guest's half-close"
    assert conv.ops == [("h", CONNECT), ("g", CONNECT), ("g", PAYLOAD), ("g", DISCONNECT),
                        ("h", PAYLOAD), ("h", DISCONNECT)]


@pytest.mark.parametrize("pieces", [
    [b"CONNECT 52\nsame write as the line"],
    [b"CONN", b"ECT 5", b"2\nsa", b"me write as the line"],
    [b"connect 52\n", b"same write as the line"],
], ids=["one-write", "line-in-pieces", "lower-case"])
def test_connect_line_forms(setup, pieces):
    """The CONNECT line whole or in pieces, any case, data in its write: the
    VMM gets the same bytes, the capture the same packets."""
    s = setup()
    guest = s.guest_listen(52, reply_after_eof)
    tool, proxy, capture = start_proxy(s)
    ok, reply = host_connect(proxy, 52, None, pieces=pieces)
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert ok == b"OK %d\n" % conv.host_port
    assert bytes(conv.to_guest) == b"same write as the line" == guest.records[0][0]
    assert bytes(conv.to_host) == reply
    assert conv.ops[:2] == [("h", CONNECT), ("g", CONNECT)]
    assert conv.guest_port == 52


def test_socat_host_program(tshark, setup):
    """socat as the host program, as Firecracker's documentation shows it."""
    s = setup()
    guest = s.guest_listen(52, reply_after_eof)
    tool, proxy, capture = start_proxy(s)
    payload = b"".join(b"line %d from socat\n" % i for i in range(2000))
    proc = subprocess.run(["socat", "-t", "10", "-", f"UNIX-CONNECT:{proxy}"],
                          input=b"CONNECT 52\n" + payload, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TIMEOUT, check=True)
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    check_headers(packets, 3)
    (conv,) = conversations(packets)
    assert proc.stdout == b"OK %d\n" % conv.host_port + bytes(conv.to_host)
    assert bytes(conv.to_guest) == payload == guest.records[0][0]
    assert bytes(conv.to_host) == guest.records[0][1]
    assert conv.ops == [("h", CONNECT), ("g", CONNECT), ("h", PAYLOAD), ("h", DISCONNECT),
                        ("g", PAYLOAD), ("g", DISCONNECT)]
    tshark_matches(tshark, capture, packets)


def test_ok_with_guest_port(setup):
    """vhost-device-vsock answers "OK <the guest's port>": the host's port is
    then unknown, and each connection gets a made-up one of its own."""
    s = setup(ok_port="guest")
    guest = s.guest_listen(52, reply_after_eof)
    tool, proxy, capture = start_proxy(s)
    answers = [host_connect(proxy, 52, b"connection %d" % i) for i in range(2)]
    assert tool.stop() == 0
    assert [ok for ok, _ in answers] == [b"OK 52\n", b"OK 52\n"]
    _, packets = read_pcap(capture)
    convs = conversations(packets)
    assert [(c.host_port, c.guest_port) for c in convs] == [(SYNTHETIC, 52), (SYNTHETIC + 1, 52)]
    for conv, (_, reply), record in zip(convs, answers, guest.records):
        assert controls(conv) == [("h", CONNECT), ("g", CONNECT), ("h", DISCONNECT), ("g", DISCONNECT)]
        assert bytes(conv.to_guest) == record[0] and bytes(conv.to_host) == reply == record[1]


def test_refused_connect_closed(tshark, setup):
    """Nobody listens on the guest port: the VMM closes without answering.
    The request is recorded with a made-up host port, then each side's end;
    bytes the host sent meanwhile reached no guest and are not recorded."""
    s = setup()
    tool, proxy, capture = start_proxy(s)
    ok, rest = host_connect(proxy, 99, b"nobody reads this")
    assert (ok, rest) == (b"", b"")
    wait_for(lambda: s.vmm.refused == [99], "the refusal")
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    check_headers(packets, 3)
    (conv,) = conversations(packets)
    assert (conv.host_port, conv.guest_port) == (SYNTHETIC, 99)
    assert conv.ops[0] == ("h", CONNECT)
    assert sorted(conv.ops[1:]) == [("g", DISCONNECT), ("h", DISCONNECT)]
    assert conv.to_guest == conv.to_host == b""
    tshark_matches(tshark, capture, packets)


def test_refused_connect_no_answer(setup):
    """The VMM never answers; the host program gives up and closes."""
    s = setup(silent_ports=[77])
    tool, proxy, capture = start_proxy(s)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(proxy)
    sock.sendall(b"CONNECT 77\n")
    sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sock.recv(100)
    sock.close()
    wait_for(lambda: s.vmm.refused == [77], "the VMM to see the host's end")
    time.sleep(0.2)
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert (conv.host_port, conv.guest_port) == (SYNTHETIC, 77)
    assert conv.ops == [("h", CONNECT), ("h", DISCONNECT), ("g", DISCONNECT)]


def test_not_a_connect_request(setup):
    """A host program that does not speak CONNECT: relayed as is, nothing recorded."""
    s = setup()
    tool, proxy, capture = start_proxy(s)
    ok, rest = host_connect(proxy, 0, b"", line=b"GET / HTTP/1.0\r\n\r\n")
    assert (ok, rest) == (b"", b"")
    assert tool.stop() == 0
    assert not read_pcap(capture)[1]


def test_many_concurrent_connections(tshark, setup):
    """32 connections at once, random sizes and write patterns: each
    direction of each one byte-exact, every host port distinct."""
    s = setup()
    guest = s.guest_listen(52, echo)
    tool, proxy, capture = start_proxy(s)
    results = {}

    def client(index):
        rng = random.Random(index)
        payload = rng.randbytes(rng.choice([0, 1, 1000, 70000, 250000]))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        with sock:
            sock.connect(proxy)
            sock.sendall(b"CONNECT 52\n")
            reader_out = bytearray()
            reader = threading.Thread(target=lambda: reader_out.extend(recv_all(sock)))
            reader.start()
            offset = 0
            while offset < len(payload):
                size = rng.choice([1, 100, 5000, 65536, 100000])
                sock.sendall(payload[offset:offset + size])
                offset += size
            sock.shutdown(socket.SHUT_WR)
            reader.join(TIMEOUT)
        ok, _, echoed = bytes(reader_out).partition(b"\n")
        results[index] = (payload, ok, echoed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert len(results) == 32
    wait_for(lambda: len(guest.records) == 32, "the guest connections to end")
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    check_headers(packets, 3)
    convs = {c.host_port: c for c in conversations(packets)}
    assert len(convs) == 32
    for payload, ok, echoed in results.values():
        conv = convs[int(ok.split()[1])]
        assert bytes(conv.to_guest) == payload
        assert bytes(conv.to_host) == echoed == payload.upper()
        assert controls(conv)[:2] == [("h", CONNECT), ("g", CONNECT)]
        assert sorted(controls(conv)[2:]) == [("g", DISCONNECT), ("h", DISCONNECT)]
    tshark_matches(tshark, capture, packets)


def test_stopped_mid_stream(tshark, setup, work):
    """The file is whole packets at every moment; stopping with a connection
    open leaves a readable capture, and the connection goes on (relayed in
    the background until it ends)."""
    s = setup()
    s.guest_listen(52, echo)
    tool, proxy, capture = start_proxy(s)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(proxy)
    sock.sendall(b"CONNECT 52\n")
    ok = b""
    while not ok.endswith(b"\n"):
        ok += sock.recv(1)
    first = b"before the stop " * 4000
    sock.sendall(first)
    echoed = bytearray()
    while len(echoed) < len(first):
        echoed += sock.recv(65536)
    # Read while the capture runs: whole packets only.
    _, running = read_pcap(capture)
    assert bytes(conversations(running)[0].to_guest) == first
    assert tool.stop() == 0
    assert not os.path.exists(proxy)
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert controls(conv) == [("h", CONNECT), ("g", CONNECT)]
    assert bytes(conv.to_guest) == first and bytes(conv.to_host) == first.upper() == echoed
    tshark_matches(tshark, capture, packets)
    # The connection outlives the capture.
    sock.sendall(b"after the stop")
    sock.shutdown(socket.SHUT_WR)
    assert recv_all(sock) == b"AFTER THE STOP"
    sock.close()
    relay = tool.announced_pid("process")
    wait_for(lambda: gone(relay), "the background relay to end")
    assert read_pcap(capture)[1] == packets


def test_capture_reader_gone(setup):
    """-w - into a pipe whose reader goes away: the program ends cleanly at
    the next packet, and in-place paths are back."""
    s = setup()
    s.guest_listen(52, echo)
    before = snapshot(s.work)
    reader = subprocess.Popen(["head", "-c", "24"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen([TOOL, "--uds", s.uds, "--in-place", "-w", "-"], stdout=reader.stdin,
                            stderr=errfile)
    reader.stdin.close()
    wait_for(lambda: snapshot(s.work) != before, "the program to take the socket over")
    reader.wait(TIMEOUT)
    host_connect(s.uds, 52, b"x" * 1000)
    assert proc.wait(TIMEOUT) == 0
    errfile.seek(0)
    assert "stopping: the capture's reader went away" in errfile.read().decode()
    wait_for(lambda: snapshot(s.work) == before, "every path back")


def test_capture_file_full(setup):
    """The capture file cannot grow (here RLIMIT_FSIZE): the capture ends with
    an error and a file of whole packets, every path is back, and the
    connection itself is not cut."""
    s = setup()
    s.guest_listen(52, echo)
    before = snapshot(s.work)
    capture = os.path.join(s.work, "capture.pcap")
    limit = 5000
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [TOOL, "--uds", s.uds, "--in-place", "-w", capture], stderr=errfile,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    wait_for(lambda: f"v.sock.vsockhybriddump-{proc.pid}" in os.listdir(s.work), "the move")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(s.uds)
    sock.sendall(b"CONNECT 52\n")
    ok = recv_line(sock)
    assert ok.startswith(b"OK ")
    for _ in range(4):
        sock.sendall(b"x" * 2000)
        assert len(recv_exactly(sock, 2000)) == 2000
    assert proc.wait(TIMEOUT) == 1
    errfile.seek(0)
    assert "error: cannot write the capture: File too large" in errfile.read().decode()
    wait_for(lambda: snapshot(s.work).keys() - {"capture.pcap"} == before.keys(), "every path back")
    sock.sendall(b"after")
    sock.shutdown(socket.SHUT_WR)
    assert recv_all(sock) == b"AFTER"
    sock.close()
    _, packets = read_pcap(capture)         # whole packets only
    assert os.path.getsize(capture) <= limit
    assert [p["op"] for p in packets[:3]] == [CONNECT, CONNECT, PAYLOAD]
    check_restored(s, before, ports=())


# ---- guest-initiated connections and in-place mode ---------------------------------

def test_guest_initiated_curl(tshark, setup):
    """In place: curl in the guest (through the fake VMM) reaches a host
    program listening on <socket>_80; a host program's connection to the
    VMM is captured in the same run. Made-up guest port 2^31 for the
    guest-initiated one, documented."""
    s = setup(guest_connect_ports=[80])
    host = s.host_listen(80, http_server)
    guest = s.guest_listen(52, reply_after_eof)
    tool, capture = start_in_place(s)
    proc = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "20", "--unix-socket",
                           os.path.join(s.guest, "connect_80"), "http://guest.invalid/from/the/guest"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, check=True)
    ok, reply = host_connect(s.uds, 52, b"and one from the host")
    wait_for(lambda: len(guest.records) == 1 and len(host.records) == 1, "both connections")
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    check_headers(packets, 3)
    by_guest_port = {c.guest_port: c for c in conversations(packets)}
    curl = by_guest_port[SYNTHETIC]
    assert curl.host_port == 80
    assert curl.ops[:4] == [("g", CONNECT), ("h", CONNECT), ("g", PAYLOAD), ("h", PAYLOAD)]
    assert sorted(controls(curl)[2:]) == [("g", DISCONNECT), ("h", DISCONNECT)]
    request, response = host.records[0]
    assert request.startswith(b"GET /from/the/guest HTTP/1.1\r\n")
    assert bytes(curl.to_host) == request and bytes(curl.to_guest) == response
    assert proc.stdout == response.split(b"\r\n\r\n", 1)[1]
    hosts = by_guest_port[52]
    assert hosts.host_port == FIRST_HOST_PORT and ok == b"OK %d\n" % FIRST_HOST_PORT
    assert bytes(hosts.to_guest) == b"and one from the host" and bytes(hosts.to_host) == reply
    tshark_matches(tshark, capture, packets)


def test_guest_initiated_socat_listener_started_later(setup):
    """A host program (socat) that starts listening on <socket>_53 after the
    capture started is taken over too; its connections are captured."""
    s = setup(guest_connect_ports=[53])
    tool, capture = start_in_place(s)
    listen_path = f"{s.uds}_53"
    socat = subprocess.Popen(["socat", f"UNIX-LISTEN:{listen_path},fork", "EXEC:tr a-z A-Z"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(listen_path), "socat to listen")
        socat_inode = os.lstat(listen_path).st_ino
        wait_for(lambda: os.lstat(listen_path).st_ino != socat_inode, "the program to take it over")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(os.path.join(s.guest, "connect_53"))
        sock.sendall(b"shout this, host\n")
        sock.shutdown(socket.SHUT_WR)
        answer = recv_all(sock)
        sock.close()
        assert answer == b"SHOUT THIS, HOST\n"
        assert tool.stop() == 0
        assert os.lstat(listen_path).st_ino == socat_inode
        assert sorted(os.listdir(s.work)) == ["capture.pcap", "guest", "v.sock", "v.sock_53"]
    finally:
        socat.kill()
        socat.wait()
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert (conv.host_port, conv.guest_port) == (53, SYNTHETIC)
    assert bytes(conv.to_host) == b"shout this, host\n" and bytes(conv.to_guest) == answer
    assert conv.ops[:3] == [("g", CONNECT), ("h", CONNECT), ("g", PAYLOAD)]


def test_guest_connect_to_vanished_listener(setup):
    """The host program dies without removing its <socket>_54: the guest's
    connection is closed (the VMM resets it), recorded as CONNECT then the
    host side's DISCONNECT, and the dead socket file is put back at once."""
    s = setup(guest_connect_ports=[54])
    host = s.host_listen(54, reply_after_eof)
    original = os.lstat(f"{s.uds}_54")
    tool, capture = start_in_place(s)
    host.close()            # nobody listens any more; the file stays
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(os.path.join(s.guest, "connect_54"))
    assert recv_all(sock) == b""
    sock.close()
    wait_for(lambda: os.lstat(f"{s.uds}_54").st_ino == original.st_ino, "the path put back")
    assert tool.stop() == 0
    _, packets = read_pcap(capture)
    (conv,) = conversations(packets)
    assert (conv.host_port, conv.guest_port) == (54, SYNTHETIC)
    assert conv.ops == [("g", CONNECT), ("h", DISCONNECT)]


def test_host_listener_removed_during_capture(setup):
    """A host program that removes its <socket>_55 (as it exits) is followed:
    the path stays removed, nothing is left behind."""
    s = setup()
    host = s.host_listen(55, reply_after_eof)
    tool, _ = start_in_place(s)
    wait_for(lambda: any(".vsockhybriddump-" in n for n in os.listdir(s.work)), "the move")
    host.close()
    os.unlink(f"{s.uds}_55")    # what the exiting program removes is the name
    wait_for(lambda: not any(n.startswith("v.sock_55") for n in os.listdir(s.work)),
             "the moved-aside socket to go too")
    assert tool.stop() == 0
    assert sorted(os.listdir(s.work)) == ["capture.pcap", "guest", "v.sock"]


def test_vmm_restart_taken_over(setup):
    """A VMM that restarts and binds its socket anew (vhost-device-vsock does
    at each start of its VM) is taken over again; the old socket, which
    nobody listens on, is not put back."""
    s = setup()
    s.guest_listen(52, reply_after_eof)
    tool, capture = start_in_place(s)
    first, _ = host_connect(s.uds, 52, b"to the first VMM")
    s.vmm.stop()
    os.unlink(s.uds)        # what a restarting VMM does before binding again
    s.vmm = FakeVmm(s.uds, s.guest)
    restarted = os.lstat(s.uds).st_ino
    wait_for(lambda: os.lstat(s.uds).st_ino != restarted, "the new socket to be taken over")
    second, _ = host_connect(s.uds, 52, b"to the restarted VMM")
    assert first == second == b"OK %d\n" % FIRST_HOST_PORT    # each VMM counts from 2^30
    assert tool.stop() == 0
    assert "took over the new socket at" in tool.stderr()
    assert os.lstat(s.uds).st_ino == restarted
    assert sorted(os.listdir(s.work)) == ["capture.pcap", "guest", "v.sock"]
    convs = conversations(read_pcap(capture)[1])
    assert [bytes(c.to_guest) for c in convs] == [b"to the first VMM", b"to the restarted VMM"]


def inplace_scene(s):
    """A VMM socket and two host listeners, with the modes and owners a
    restore must bring back exactly."""
    s.host_listen(52, reply_after_eof)
    s.host_listen(53, echo)
    os.chmod(s.uds, 0o750)
    os.chmod(f"{s.uds}_52", 0o700)
    return snapshot(s.work)


def check_restored(s, before, ports=(52, 53)):
    after = snapshot(s.work)
    after.pop("capture.pcap", None)
    before = dict(before)
    before.pop("capture.pcap", None)
    assert after == before
    # The VMM and the host programs are reachable again, without the program.
    ok, _ = host_connect(s.uds, 99, b"")
    assert ok == b""    # refused by the VMM itself (no guest listener), not by a dead socket
    assert s.vmm.refused[-1] == 99
    for port in ports:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(f"{s.uds}_{port}")
        sock.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_inplace_restores_after_signal(setup, sig):
    """SIGTERM (Wireshark's stop), SIGINT, SIGHUP: every path back, same inode,
    mode and owner; meanwhile the program's own listeners had the originals'
    permissions."""
    s = setup()
    s.guest_listen(52, reply_after_eof)
    before = inplace_scene(s)
    tool, _ = start_in_place(s)
    during = snapshot(s.work)
    for name in ("v.sock", "v.sock_52", "v.sock_53"):
        assert during[name][1] != before[name][1]       # another socket now
        assert during[name][2:] == before[name][2:]     # same mode, owner, group
        assert during[f"{name}.vsockhybriddump-{tool.proc.pid}"] == before[name]
    ok, reply = host_connect(s.uds, 52, b"during the capture")
    assert ok.startswith(b"OK ") and reply.startswith(b"guest read 18 bytes")
    assert tool.stop(sig) == 0
    check_restored(s, before)


def test_inplace_client_killed(setup, work):
    """A host program killed with SIGKILL mid-stream: its end is captured,
    the capture goes on, and SIGTERM then puts every path back."""
    s = setup()
    s.guest_listen(52, echo)
    before = inplace_scene(s)
    tool, capture = start_in_place(s)
    client = subprocess.Popen([sys.executable, "-c", f"""
import socket, time
s = socket.socket(socket.AF_UNIX)
s.connect({s.uds!r})
s.sendall(b"CONNECT 52\\n" + b"doomed " * 1000)
print("sent", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE)
    assert client.stdout.readline() == b"sent\n"
    wait_for(lambda: len(read_pcap(capture)[1]) >= 3, "the payload to be captured")
    client.kill()
    client.wait()
    wait_for(lambda: any(p["op"] == DISCONNECT for p in read_pcap(capture)[1]), "the end")
    ok, reply = host_connect(s.uds, 52, b"still capturing")
    assert ok.startswith(b"OK ") and reply == b"STILL CAPTURING"
    assert tool.stop() == 0
    check_restored(s, before)
    convs = conversations(read_pcap(capture)[1])
    assert bytes(convs[0].to_guest) == b"doomed " * 1000
    assert ("h", DISCONNECT) in convs[0].ops


def test_inplace_program_killed_guardian_restores(setup):
    """SIGKILL of the program itself: its guardian process puts every path back."""
    s = setup()
    before = inplace_scene(s)
    tool, _ = start_in_place(s)
    guardian = tool.announced_pid("guardian process")
    assert not gone(guardian)
    tool.proc.kill()
    tool.wait()
    wait_for(lambda: gone(guardian), "the guardian to finish")
    check_restored(s, before)


def test_inplace_both_killed_then_repair(setup):
    """SIGKILL of the program and of its guardian: the VMM's socket is left
    moved (its name is a socket nobody listens on). A later run detects it:
    --repair puts it back, and so does the start of a new in-place capture."""
    s = setup()
    before = inplace_scene(s)
    for attempt in ("--repair", "--in-place"):
        tool, _ = start_in_place(s)
        guardian = tool.announced_pid("guardian process")
        os.kill(guardian, signal.SIGKILL)
        tool.proc.kill()
        tool.wait()
        wait_for(lambda pid=guardian: gone(pid), "the guardian to die")
        left = snapshot(s.work)
        assert f"v.sock.vsockhybriddump-{tool.proc.pid}" in left
        with pytest.raises(ConnectionRefusedError):
            host_connect(s.uds, 52, b"")
        if attempt == "--repair":
            proc = run_tool(["--uds", s.uds, "--repair"])
            assert proc.returncode == 0, proc.stderr
            assert b"put " + s.uds.encode() + b" back" in proc.stderr
        else:
            again, _ = start_in_place(s)
            assert again.stop() == 0
            assert f"put {s.uds} back" in again.stderr()
        check_restored(s, before)


def test_second_run_refused_while_first_captures(setup):
    """A second in-place run on the same socket refuses and changes nothing."""
    s = setup()
    inplace_scene(s)
    tool, _ = start_in_place(s)
    during = snapshot(s.work)
    proc = run_tool(["--uds", s.uds, "--in-place", "-w", os.path.join(s.work, "second.pcap")])
    assert proc.returncode == 1
    assert b"another vsockhybriddump is capturing there" in proc.stderr
    assert snapshot(s.work) == during
    assert tool.stop() == 0


# ---- the committed captures ---------------------------------------------------------

@pytest.mark.parametrize("truth_path", sorted(glob.glob(os.path.join(CAPTURES, "extcap", "*.json"))),
                         ids=os.path.basename)
def test_committed_capture(tshark, truth_path):
    """test-captures/extcap (tools/gen_extcap_captures.py): every connection
    as its JSON records what the programs sent, byte for byte each way."""
    with open(truth_path, encoding="utf-8") as f:
        truth = json.load(f)
    path = os.path.join(os.path.dirname(truth_path), truth["pcap"])
    linktype, packets = read_pcap(path)
    assert linktype == truth["pcap_linktype"] == 271
    check_headers(packets, 3)
    convs = {(c.host_port, c.guest_port): c for c in conversations(packets)}
    assert len(convs) == len(truth["connections"])
    for expected in truth["connections"]:
        conv = convs[(expected["host"]["port"], expected["guest"]["port"])]
        for data, record in ((conv.to_guest, expected["host_to_guest"]),
                             (conv.to_host, expected["guest_to_host"])):
            assert len(data) == record["bytes"]
            assert hashlib.sha256(data).hexdigest() == record["sha256"]
            assert record.get("hex", data.hex()) == data.hex()
        first = "h" if expected["initiator"] == "host" else "g"
        other = "g" if first == "h" else "h"
        ops = controls(conv)
        if expected["result"] == "established":
            assert ops[:2] == [(first, CONNECT), (other, CONNECT)]
            assert sorted(ops[2:]) == [("g", DISCONNECT), ("h", DISCONNECT)]
        else:
            assert ops[0] == ("h", CONNECT) and sorted(ops[1:]) == [("g", DISCONNECT), ("h", DISCONNECT)]
    tshark_matches(tshark, path, packets)


# ---- refusals: a clear error and nothing changed -----------------------------------

def refuse(args, work, message, nobody=False):
    before = snapshot(work)
    proc = run_tool(args, nobody=nobody)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == b""
    assert message in proc.stderr.decode()
    assert snapshot(work) == before


def test_refuses_missing_path(work):
    refuse(["--uds", f"{work}/nothing", "--in-place", "-w", f"{work}/c.pcap"], work,
           f"{work}/nothing: no such socket")
    refuse(["--uds", f"{work}/nothing", "--proxy", f"{work}/p", "-w", f"{work}/c.pcap"], work,
           f"{work}/nothing: no such socket")


def test_refuses_non_socket_and_symlink(setup):
    s = setup()
    with open(os.path.join(s.work, "file"), "w", encoding="ascii") as f:
        f.write("not a socket")
    os.symlink("v.sock", os.path.join(s.work, "link.sock"))
    refuse(["--uds", f"{s.work}/file", "--in-place", "-w", f"{s.work}/c.pcap"], s.work,
           f"{s.work}/file is not a socket")
    refuse(["--uds", f"{s.work}/link.sock", "--in-place", "-w", f"{s.work}/c.pcap"], s.work,
           f"{s.work}/link.sock is a symbolic link")
    refuse(["--uds", s.uds, "--proxy", s.uds, "-w", f"{s.work}/c.pcap"], s.work,
           "--proxy must be a new path, not the VMM's socket")
    refuse(["--uds", s.uds, "--proxy", f"{s.work}/file", "-w", f"{s.work}/c.pcap"], s.work,
           f"{s.work}/file exists; the proxy socket must be a new path")


def test_refuses_bad_options(setup):
    s = setup()
    refuse(["--uds", s.uds, "-w", f"{s.work}/c.pcap"], s.work, "choose how to interpose")
    refuse(["--uds", s.uds, "--in-place", "--guest-cid", "2", "-w", f"{s.work}/c.pcap"], s.work,
           "a guest CID is 3 to 4294967294")
    refuse(["--uds", s.uds, "--in-place"], s.work, "-w FILE (or -w - for stdout) is required")
    refuse(["--uds", s.uds, "--in-place", "-w", f"{s.work}/no/such/dir/c.pcap"], s.work,
           f"cannot write the capture to {s.work}/no/such/dir/c.pcap: No such file or directory")
    refuse(["--uds", s.uds, "--in-place", "-w", "/dev/full"], s.work,
           "cannot write the capture to /dev/full: No space left on device")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to make files for another user")
def test_refuses_unwritable_directory(setup):
    """In place in a directory its user cannot write: no move, a clear error."""
    s = setup()
    os.chown(s.uds, NOBODY, NOBODY)     # the user's own socket, in a directory of root's
    refuse(["--uds", s.uds, "--in-place", "-w", "/dev/null"], s.work,
           f"cannot create or rename files in {s.work}", nobody=True)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to make a socket of another user")
def test_refuses_other_users_socket(setup):
    """In place on a socket someone else owns (even as root): refused."""
    s = setup()
    os.chown(s.uds, NOBODY, NOBODY)
    refuse(["--uds", s.uds, "--in-place", "-w", f"{s.work}/c.pcap"], s.work,
           f"{s.uds} belongs to uid {NOBODY}, not to this user")
    # Other users' <socket>_<port> listeners are left alone with a warning.
    os.chown(s.uds, 0, 0)
    s.host_listen(52, echo)
    os.chown(f"{s.uds}_52", NOBODY, NOBODY)
    before = snapshot(s.work)
    tool, _ = start_in_place(s)
    time.sleep(1.2)
    assert snapshot(s.work)["v.sock_52"] == before["v.sock_52"]
    assert tool.stop() == 0
    assert tool.stderr().count(f"not capturing the connections to {s.uds}_52: "
                               f"it belongs to uid {NOBODY}") == 1


def test_refuses_seqpacket_socket(setup, work):
    """A VMM listening with SOCK_SEQPACKET (Firecracker's seqpacket mode):
    refused in both modes; a host program's seqpacket listener is left alone."""
    seqpacket = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    seqpacket.bind(os.path.join(work, "seq.sock"))
    seqpacket.listen()
    with seqpacket:
        for mode in (["--in-place"], ["--proxy", f"{work}/p"]):
            refuse(["--uds", f"{work}/seq.sock", "-w", f"{work}/c.pcap"] + mode, work,
                   f"{work}/seq.sock is a SOCK_SEQPACKET socket")
        s = setup()
        port = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        port.bind(f"{s.uds}_52")
        port.listen()
        with port:
            before = snapshot(s.work)
            tool, _ = start_in_place(s)
            time.sleep(1.2)     # two looks at the directory: warned about once
            assert snapshot(s.work)["v.sock_52"] == before["v.sock_52"]
            assert tool.stop() == 0
            assert tool.stderr().count(f"not capturing the connections to {s.uds}_52: "
                                       f"{s.uds}_52 is a SOCK_SEQPACKET socket") == 1


def test_proxy_socket_permissions(setup):
    """The proxy socket gets the VMM socket's permission bits, no wider."""
    s = setup()
    os.chmod(s.uds, 0o700)
    tool, proxy, _ = start_proxy(s)
    st = os.lstat(proxy)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert tool.stop() == 0
    assert not os.path.exists(proxy)
