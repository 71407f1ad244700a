#!/usr/bin/env python3
"""Scenario programs run inside the capture VM.

For each scenario: start tcpdump on vsockmon0, run the applications, stop tcpdump, and write
<scenario>.json with ground truth recorded by the applications themselves (what each side
sent and read, addresses, outcome), never derived from the capture.

Runs as  capture.py --role outer --out DIR [--only a,b]   (capture VM; loopback + vhost host side)
         capture.py --role nested --out DIR              (nested VM; vhost guest side)
"""
import argparse
import ctypes
import errno
import hashlib
import http.client
import http.server
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import struct
import sys
import threading
import time

AF_VSOCK = socket.AF_VSOCK
CID_ANY = socket.VMADDR_CID_ANY
CID_LOCAL = getattr(socket, "VMADDR_CID_LOCAL", 1)
CID_HOST = socket.VMADDR_CID_HOST
NESTED_CID = 3
SHARE = "/mnt/vmcap"

ADDRESS_CONVENTION = (
    "src = the side that called connect() (cid/port as reported by the server's accept(), or the "
    "client's getsockname() port with the transport's local CID when no accept happened), dst = the "
    "listening side. 'bytes'/'sha256'/'send_calls' = bytes accepted by the sender's send() calls in "
    "that direction; 'received_*' = what the peer application read. client_getsockname shows cid "
    "4294967295 (VMADDR_CID_ANY) because connect() auto-binds to CID_ANY; the wire carries the "
    "transport's local CID.")


def payload(n, seed):
    """Deterministic pseudo-random test bytes, so reruns send the same content."""
    return random.Random(seed).randbytes(n)


def errname(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)


class Direction:
    """Ground truth of one direction: what the sender's send() accepted and what the peer read."""

    def __init__(self, seqpacket=False):
        self.sent, self.sent_n, self.send_calls = hashlib.sha256(), 0, 0
        self.recv, self.recv_n = hashlib.sha256(), 0
        self.seqpacket = seqpacket
        self.msgs_sent, self.msgs_recv = [], []
        self.fixed = None

    def set_from_dumps(self, sent, received):
        """Ground truth taken from another program's raw dumps: (length, sha256) each."""
        self.fixed = {"bytes": sent[0], "sha256": sent[1], "send_calls": None,
                      "received_bytes": received[0], "received_sha256": received[1]}

    def on_send(self, data):
        self.sent.update(data)
        self.sent_n += len(data)
        self.send_calls += 1

    def on_recv(self, data):
        self.recv.update(data)
        self.recv_n += len(data)

    def half(self, side):
        """The part one side can know: the sender's or the receiver's view."""
        if self.fixed:
            return {k: v for k, v in self.fixed.items() if k.startswith("received_") == (side == "recv")}
        if side == "send":
            d = {"bytes": self.sent_n, "sha256": self.sent.hexdigest(), "send_calls": self.send_calls}
            if self.seqpacket:
                d["messages_detail"] = self.msgs_sent
            return d
        d = {"received_bytes": self.recv_n, "received_sha256": self.recv.hexdigest()}
        if self.seqpacket:
            d["received_messages"] = self.msgs_recv
        return d


def finish_direction(d):
    """Add the derived fields once both halves are present."""
    if "bytes" in d and "received_bytes" in d:
        d["receiver_got_everything"] = (d["bytes"] == d["received_bytes"]
                                        and d["sha256"] == d["received_sha256"])
    if "messages_detail" in d:
        d["messages"] = [m["len"] for m in d["messages_detail"]]
    return d


class Conn:
    """One vsock connection (or connection attempt) of a scenario."""

    def __init__(self, scn, name, sotype=socket.SOCK_STREAM):
        self.scn, self.name, self.sotype = scn, name, sotype
        sp = sotype == socket.SOCK_SEQPACKET
        self.c2s, self.s2c = Direction(sp), Direction(sp)
        self.info = {"result": None}
        self.events = []
        self.extra = {}

    def ev(self, who, text):
        self.events.append("+%.3fs %s: %s" % (time.monotonic() - self.scn.t0, who, text))

    def to_json(self):
        j = {"name": self.name,
             "socket_type": "SOCK_SEQPACKET" if self.sotype == socket.SOCK_SEQPACKET else "SOCK_STREAM",
             "virtio_type": 2 if self.sotype == socket.SOCK_SEQPACKET else 1}
        i = self.info
        peer = i.get("server_accept_peer")
        sock = i.get("client_getsockname")
        if peer:
            j["src"] = {"cid": peer[0], "port": peer[1]}
        elif sock:
            j["src"] = {"cid": i.get("client_local_cid", CID_LOCAL), "port": sock[1]}
        j["dst"] = {"cid": i["dst"][0], "port": i["dst"][1]} if "dst" in i else None
        j.update({k: v for k, v in i.items() if k not in ("dst", "client_local_cid")})
        j["src_to_dst"] = finish_direction({**self.c2s.half("send"), **self.c2s.half("recv")})
        j["dst_to_src"] = finish_direction({**self.s2c.half("send"), **self.s2c.half("recv")})
        j["events"] = self.events
        j.update(self.extra)
        return j


class RawIn(io.RawIOBase):
    def __init__(self, rs):
        self.rs = rs

    def readable(self):
        return True

    def readinto(self, b):
        return self.rs.recv_into(b)

    def close(self):
        if not self.closed:
            self.rs.unref()
        super().close()


class RecSock:
    """Socket wrapper that records every byte the application sends and reads."""

    def __init__(self, sock, conn, side):
        self.sock, self.conn, self.side = sock, conn, side
        self.out = conn.c2s if side == "client" else conn.s2c
        self.inn = conn.s2c if side == "client" else conn.c2s
        # Like socket.makefile(): close() waits until the file objects are closed too.
        self.refs, self.closing = 0, False

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def send(self, data, flags=0):
        n = self.sock.send(data, flags)
        self.out.on_send(bytes(data[:n]))
        return n

    def sendall(self, data, flags=0):
        view = memoryview(data)
        while len(view):
            view = view[self.send(view, flags):]

    def sendmsg_eor(self, data, eor):
        """One seqpacket message; MSG_EOR marks the end of a record."""
        n = self.sock.send(data, socket.MSG_EOR if eor else 0)
        self.out.on_send(bytes(data[:n]))
        self.out.msgs_sent.append({"len": n, "eor": eor, "sha256": hashlib.sha256(data[:n]).hexdigest()})
        return n

    def recvmsg_seq(self, bufsize=1 << 18):
        data, _, flags, _ = self.sock.recvmsg(bufsize)
        self.inn.on_recv(data)
        if data or flags:
            self.inn.msgs_recv.append({"len": len(data), "msg_eor": bool(flags & socket.MSG_EOR),
                                       "msg_trunc": bool(flags & socket.MSG_TRUNC),
                                       "sha256": hashlib.sha256(data).hexdigest()})
        return data, flags

    def recv(self, n, flags=0):
        d = self.sock.recv(n, flags)
        self.inn.on_recv(d)
        return d

    def recv_into(self, buf, nbytes=0):
        k = self.sock.recv_into(buf, nbytes)
        self.inn.on_recv(bytes(memoryview(buf)[:k]))
        return k

    def makefile(self, mode="rb", buffering=None, **_):
        assert "r" in mode
        self.refs += 1
        return io.BufferedReader(RawIn(self))

    def unref(self):
        self.refs -= 1
        if self.closing and self.refs == 0:
            self.sock.close()

    def close(self):
        self.closing = True
        if self.refs == 0:
            self.sock.close()

    def set_linger0(self):
        """SO_LINGER {1, 0}. Python's setsockopt() only takes integers on AF_VSOCK sockets."""
        libc = ctypes.CDLL(None, use_errno=True)
        lg = struct.pack("ii", 1, 0)
        if libc.setsockopt(self.sock.fileno(), socket.SOL_SOCKET, socket.SO_LINGER, lg, len(lg)):
            raise OSError(ctypes.get_errno(), "setsockopt(SO_LINGER)")

    def read_to_eof(self, chunk=65536):
        got = bytearray()
        while True:
            d = self.recv(chunk)
            if not d:
                return bytes(got)
            got += d


class Scenario:
    def __init__(self, name, description):
        self.name, self.description = name, description
        self.t0 = time.monotonic()
        self.conns, self.notes, self.errors = [], [], []
        self.extra = {}
        self._by_port = {}
        self._cv = threading.Condition()
        self.threads = []

    def conn(self, name, sotype=socket.SOCK_STREAM):
        c = Conn(self, name, sotype)
        self.conns.append(c)
        return c

    # Servers find the client's Conn by the peer port accept() reports.
    def register(self, port, conn):
        with self._cv:
            self._by_port[port] = conn
            self._cv.notify_all()

    def conn_for_port(self, port, timeout=30):
        with self._cv:
            self._cv.wait_for(lambda: port in self._by_port, timeout)
            return self._by_port[port]

    def thread(self, name, fn, *args):
        def run():
            try:
                fn(*args)
            except Exception as e:  # recorded, the scenario goes on
                self.errors.append("%s: %s: %r" % (name, errname(e), e))
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def join(self, timeout=120):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
            if t.is_alive():
                self.errors.append("thread %s still running at join" % t.name)
        self.threads = []


def listener(port, sotype=socket.SOCK_STREAM, bufsize=None, backlog=8):
    s = socket.socket(AF_VSOCK, sotype)
    if bufsize:
        # Accepted sockets inherit the listener's buffer size (and so its buf_alloc).
        s.setsockopt(AF_VSOCK, socket.SO_VM_SOCKETS_BUFFER_SIZE, bufsize)
    s.bind((CID_ANY, port))
    s.listen(backlog)
    return s


def connect(scn, conn, cid, port, local_cid=CID_LOCAL):
    """Connect, fill in the client's part of conn.info; returns a RecSock or None."""
    s = socket.socket(AF_VSOCK, conn.sotype)
    conn.info["dst"] = [cid, port]
    conn.info["client_local_cid"] = local_cid
    try:
        s.connect((cid, port))
    except OSError as e:
        conn.info["result"] = {errno.ECONNRESET: "refused", errno.ECONNREFUSED: "refused"}.get(
            e.errno, "error")
        conn.info["client_error"] = errname(e)
        try:
            conn.info["client_getsockname"] = list(s.getsockname())
        except OSError:
            pass
        conn.ev("client", "connect((%d,%d)) failed: %s" % (cid, port, errname(e)))
        s.close()
        return None
    name = s.getsockname()
    conn.info.update(result="established", client_getsockname=list(name),
                     client_getpeername=list(s.getpeername()))
    conn.ev("client", "connect((%d,%d)) ok, getsockname=%r" % (cid, port, name))
    scn.register(name[1], conn)
    return RecSock(s, conn, "client")


def accept(scn, lsock, timeout=60):
    """Accept one connection and find its Conn; returns (RecSock, conn)."""
    lsock.settimeout(timeout)
    s, peer = lsock.accept()
    s.settimeout(None)
    conn = scn.conn_for_port(peer[1])
    conn.info.update(server_getsockname=list(s.getsockname()), server_accept_peer=list(peer))
    conn.ev("server", "accept() -> peer %r" % (peer,))
    return RecSock(s, conn, "server"), conn


# ---------------------------------------------------------------- scenarios (loopback, CID 1)

def sc_stream_basic(scn):
    """One request/response exchange with an orderly close."""
    ls = listener(1234)
    c = scn.conn("basic")

    def server():
        rs, conn = accept(scn, ls)
        req = b""
        while not req.endswith(b"\n"):
            req += rs.recv(4096)
        conn.ev("server", "got request %r" % req)
        rs.sendall(b"TIME 2024-01-01T00:00:00Z ok; served by vsock port 1234\n")
        conn.ev("server", "sent response, waiting for EOF")
        rest = rs.read_to_eof()
        conn.ev("server", "EOF from client (%d more bytes); close()" % len(rest))
        rs.close()

    scn.thread("server", server)
    rs = connect(scn, c, CID_LOCAL, 1234)
    rs.sendall(b"GET-TIME client=vmcap seq=1\n")
    c.ev("client", "sent request")
    resp = b""
    while not resp.endswith(b"\n"):
        resp += rs.recv(4096)
    c.ev("client", "got response %r" % resp)
    rs.shutdown(socket.SHUT_WR)
    c.ev("client", "shutdown(SHUT_WR)")
    rs.read_to_eof()
    c.ev("client", "EOF from server; close()")
    rs.close()
    scn.join()
    ls.close()
    scn.notes.append("client: send request, read response, shutdown(SHUT_WR), read to EOF, close(); "
                     "server: read request line, send response, read to EOF, close()")


def sc_refused(scn):
    """Connection attempts that are refused: no listener (stream and seqpacket) and a
    SEQPACKET connect to a STREAM listener."""
    for name, sotype, port in (("no_listener_stream", socket.SOCK_STREAM, 4321),
                               ("no_listener_seqpacket", socket.SOCK_SEQPACKET, 4322)):
        c = scn.conn(name, sotype)
        rs = connect(scn, c, CID_LOCAL, port)
        if rs:
            rs.close()
            scn.errors.append("%s: connect unexpectedly succeeded" % name)
    ls = listener(4323, socket.SOCK_STREAM)
    c = scn.conn("seqpacket_to_stream_listener", socket.SOCK_SEQPACKET)
    rs = connect(scn, c, CID_LOCAL, 4323)
    if rs:
        rs.close()
        scn.errors.append("seqpacket_to_stream_listener: connect unexpectedly succeeded")
    ls.close()
    scn.notes.append("Each connect() fails with ECONNRESET: the REQUEST is answered by RST. "
                     "Port 4323 has a SOCK_STREAM listener, the client is SOCK_SEQPACKET.")


CREDIT_BUF = 65536
CREDIT_TOTAL = 1 << 20


def sc_credit(scn):
    """Bulk transfer (1 MiB) to a slow reader with a 64 KiB receive buffer: CREDIT_UPDATEs."""
    ls = listener(5001, bufsize=CREDIT_BUF)
    c = scn.conn("bulk_to_slow_reader")
    data = payload(CREDIT_TOTAL, 5001)

    def server():
        rs, conn = accept(scn, ls)
        n = reads = 0
        while True:
            d = rs.recv(8192)
            if not d:
                break
            n += len(d)
            reads += 1
            time.sleep(0.003)  # slow reader: the sender runs out of credit
        conn.ev("server", "EOF after %d bytes in %d reads" % (n, reads))
        rs.sendall(b"got %d\n" % n)
        rs.close()
        conn.extra["server_reads"] = reads

    scn.thread("server", server)
    rs = connect(scn, c, CID_LOCAL, 5001)
    # 40000 is not a divisor of the 64 KiB window, so some RW packets are cut short by credit.
    for off in range(0, len(data), 40000):
        rs.sendall(data[off:off + 40000])
    c.ev("client", "sent %d bytes; shutdown(SHUT_WR)" % len(data))
    rs.shutdown(socket.SHUT_WR)
    c.ev("client", "server says %r" % rs.read_to_eof())
    rs.close()
    scn.join()
    ls.close()
    c.extra["receiver_buffer_size"] = CREDIT_BUF
    scn.notes.append("Listener SO_VM_SOCKETS_BUFFER_SIZE=%d (inherited by the accepted socket); "
                     "client sends %d bytes in 40000-byte sendall()s; server reads 8 KiB every 3 ms."
                     % (CREDIT_BUF, CREDIT_TOTAL))


def sc_multi_halfclose(scn):
    """Concurrent connections, half-closes in each direction while data still flows."""
    ports = {"A": 6001, "B": 6002, "C": 6003, "D": 6004}
    lss = {k: listener(p) for k, p in ports.items()}

    # A (two clients on one port): client sends a request then SHUT_WR; server streams after EOF.
    def a_server(ls):
        rs, conn = accept(scn, ls)
        req = rs.read_to_eof()
        conn.ev("server", "EOF after %d request bytes; streaming reply" % len(req))
        for i in range(8):
            rs.sendall(payload(5000, 100 + i))
            time.sleep(0.01)
        rs.close()
        conn.ev("server", "close()")

    def a_client(name):
        c = scn.conn(name)
        rs = connect(scn, c, CID_LOCAL, ports["A"])
        rs.sendall(b"REQUEST " + name.encode() + b" " + b"x" * 190)
        rs.shutdown(socket.SHUT_WR)
        c.ev("client", "shutdown(SHUT_WR), reading reply")
        got = rs.read_to_eof()
        c.ev("client", "EOF after %d reply bytes" % len(got))
        rs.close()

    # B: server sends a banner and SHUT_WR first; client keeps sending, then closes its side.
    def b_server(ls):
        rs, conn = accept(scn, ls)
        rs.sendall(b"BANNER: server will not send anymore\n")
        rs.shutdown(socket.SHUT_WR)
        conn.ev("server", "shutdown(SHUT_WR) after banner")
        got = rs.read_to_eof()
        conn.ev("server", "EOF after %d bytes; close()" % len(got))
        rs.close()

    def b_client():
        c = scn.conn("B-server-halfclose")
        rs = connect(scn, c, CID_LOCAL, ports["B"])
        c.ev("client", "banner to EOF: %r" % rs.read_to_eof())
        for i in range(10):
            rs.sendall(payload(3000, 200 + i))
            time.sleep(0.01)
        rs.shutdown(socket.SHUT_WR)
        c.ev("client", "shutdown(SHUT_WR) after 30000 bytes")
        rs.read_to_eof()
        rs.close()

    # C: interleaved ping-pong, then the client half-closes and the server sends a trailer.
    def c_server(ls):
        rs, conn = accept(scn, ls)
        f = rs.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                break
            n = int(line.split()[1])
            rs.sendall(b"PONG %d " % n + b"y" * n + b"\n")
        conn.ev("server", "EOF; sending trailer after client half-close")
        rs.sendall(b"TRAILER bye\n")
        rs.close()

    def c_client():
        c = scn.conn("C-pingpong")
        rs = connect(scn, c, CID_LOCAL, ports["C"])
        f = rs.makefile("rb")
        for i in range(10):
            n = (i * 37) % 200 + 1
            rs.sendall(b"PING %d\n" % n)
            f.readline()
            time.sleep(0.005)
        rs.shutdown(socket.SHUT_WR)
        c.ev("client", "shutdown(SHUT_WR)")
        c.ev("client", "trailer %r" % f.read())
        rs.close()

    # D: both sides stream 200 kB at once; each half-closes when done and reads to EOF.
    def d_pump(rs, seed, who, conn):
        def rx():
            n = len(rs.read_to_eof())
            conn.ev(who, "EOF after %d bytes" % n)
        t = threading.Thread(target=rx, daemon=True)
        t.start()
        for i in range(10):
            rs.sendall(payload(20000, seed + i))
            time.sleep(0.005)
        rs.shutdown(socket.SHUT_WR)
        conn.ev(who, "shutdown(SHUT_WR) after 200000 bytes")
        t.join(60)
        rs.close()

    def d_server(ls):
        rs, conn = accept(scn, ls)
        d_pump(rs, 400, "server", conn)

    def d_client():
        c = scn.conn("D-bulk-both-ways")
        rs = connect(scn, c, CID_LOCAL, ports["D"])
        d_pump(rs, 300, "client", c)

    for k, fn in (("A", a_server), ("B", b_server), ("C", c_server), ("D", d_server)):
        scn.thread("server-" + k, fn, lss[k])
    scn.thread("server-A2", a_server, lss["A"])
    scn.thread("client-A1", a_client, "A1-client-halfclose")
    scn.thread("client-A2", a_client, "A2-client-halfclose")
    scn.thread("client-B", b_client)
    scn.thread("client-C", c_client)
    scn.thread("client-D", d_client)
    scn.join()
    for ls in lss.values():
        ls.close()
    for c in scn.conns:
        c.extra["listen_port"] = c.info["dst"][1]
    scn.notes.append("A1/A2: client sends a request and shuts down writing, the server streams "
                     "40000 bytes after EOF. B: server sends a banner and shuts down writing, the "
                     "client then sends 30000 bytes. C: 10 ping-pongs, client half-close, server "
                     "trailer. D: both sides send 200000 bytes concurrently and half-close.")


SEQ_MSGS = [(1, False), (7, True), (64, False), (1000, True), (4096, False), (4097, True),
            (65536, False), (65537, True), (100000, False), (200000, True), (3, False), (30000, True)]
SEQ_REPLIES = [(10, True), (70000, False), (5, True)]


def sc_seqpacket(scn):
    """SOCK_SEQPACKET messages, some spanning packets (EOM on the last), some with MSG_EOR."""
    ls = listener(7001, socket.SOCK_SEQPACKET)
    c = scn.conn("seqpacket", socket.SOCK_SEQPACKET)

    def server():
        rs, conn = accept(scn, ls)
        for _ in SEQ_MSGS:
            rs.recvmsg_seq()
        conn.ev("server", "got %d messages; replying" % len(SEQ_MSGS))
        for i, (n, eor) in enumerate(SEQ_REPLIES):
            rs.sendmsg_eor(payload(n, 7100 + i), eor)
        d, _ = rs.recvmsg_seq()
        conn.ev("server", "EOF (%d); close()" % len(d))
        rs.close()

    scn.thread("server", server)
    rs = connect(scn, c, CID_LOCAL, 7001)
    for i, (n, eor) in enumerate(SEQ_MSGS):
        rs.sendmsg_eor(payload(n, 7000 + i), eor)
    c.ev("client", "sent %d messages" % len(SEQ_MSGS))
    for _ in SEQ_REPLIES:
        rs.recvmsg_seq()
    c.ev("client", "got %d replies; close()" % len(SEQ_REPLIES))
    rs.close()
    scn.join()
    ls.close()
    scn.notes.append("Message sizes include 65536 and above (several RW packets, EOM on the last). "
                     "'eor' = sent with MSG_EOR; 'msg_eor' = the receiver's recvmsg() flags had MSG_EOR. "
                     "The receive record with len 0 is the EOF the server saw.")


_LINES = b"".join(b"<p>line %05d of the vsock test page</p>\n" % i for i in range(2500))
HTTP_BODY = b"<html><body>\n" + _LINES[:100000 - 13 - 15] + b"</body></html>\n"  # 100000 bytes
POST_BODY = json.dumps({"items": [{"id": i, "name": "item-%d" % i, "tags": ["vsock", "test"]}
                                  for i in range(6)]}).encode()


def sc_http(scn):
    """HTTP/1.1 over vsock: GET with a 100000-byte body, then a POST (keep-alive)."""
    port = 8080
    ls = listener(port)
    c = scn.conn("http")
    exchanges = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return "vmcap-http/1.0"

        def log_message(self, fmt, *args):
            c.ev("server", fmt % args)

        def date_time_string(self, timestamp=None):
            return "Mon, 01 Jan 2024 00:00:00 GMT"  # reproducible header sizes

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(HTTP_BODY)))
            self.end_headers()
            self.wfile.write(HTTP_BODY)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            out = json.dumps({"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(out)

    def server():
        rs, conn = accept(scn, ls)
        srv = type("S", (), {"server_name": "vsock", "server_port": port})()
        Handler(rs, tuple(conn.info["server_accept_peer"]), srv)  # serves until Connection: close
        rs.close()
        conn.ev("server", "close()")

    class VsockHTTPConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = connect(scn, c, CID_LOCAL, port)

    scn.thread("server", server)
    hc = VsockHTTPConnection("vsock-1", port)
    for method, path, body, hdrs in (
            ("GET", "/index.html", None, {"Accept": "text/html", "User-Agent": "vmcap-client/1.0"}),
            ("POST", "/api/items", POST_BODY, {"Content-Type": "application/json",
                                               "User-Agent": "vmcap-client/1.0"})):
        hc.request(method, path, body=body, headers=hdrs)
        r = hc.getresponse()
        rbody = r.read()
        exchanges.append({"request_line": "%s %s HTTP/1.1" % (method, path),
                          "request_body_len": len(body or b""),
                          "request_body_sha256": hashlib.sha256(body or b"").hexdigest(),
                          "status": "%d %s" % (r.status, r.reason),
                          "response_body_len": len(rbody),
                          "response_body_sha256": hashlib.sha256(rbody).hexdigest(),
                          "response_content_type": r.getheader("Content-Type")})
        c.ev("client", "%s %s -> %d, %d body bytes" % (method, path, r.status, len(rbody)))
    hc.close()
    c.ev("client", "close()")
    scn.join()
    ls.close()
    c.extra["http_exchanges"] = exchanges
    if exchanges[0]["response_body_sha256"] != hashlib.sha256(HTTP_BODY).hexdigest():
        scn.errors.append("GET body mismatch")
    scn.notes.append("Python http.server (BaseHTTPRequestHandler) on an AF_VSOCK socket and "
                     "http.client over AF_VSOCK, one keep-alive connection: GET /index.html "
                     "(200, %d-byte body) then POST /api/items (201, Connection: close)."
                     % len(HTTP_BODY))


# ------------------------------------------------- socat-bridged scenarios (TLS, SSH)

def wait_listen(port, kind="--vsock", timeout=20):
    """Wait for a listener without connecting to it (a probe would be traffic of its own)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["ss", "-H", "-n", "-l", kind], capture_output=True, text=True).stdout
        if re.search(r":%d\s" % port, out):
            return True
        time.sleep(0.05)
    return False


def sha_file(path):
    d = open(path, "rb").read() if os.path.exists(path) else b""
    return len(d), hashlib.sha256(d).hexdigest()


def socat_truth(conn, client_dumps, server_dumps, client_log, server_log):
    """Fill a Conn from socat's raw dumps (-r/-R) and -d -d logs on both ends of the vsock leg."""
    c_sent, c_recv = (sha_file(p) for p in client_dumps)
    s_sent, s_recv = (sha_file(p) for p in server_dumps)
    conn.c2s.set_from_dumps(c_sent, s_recv)
    conn.s2c.set_from_dumps(s_sent, c_recv)
    # socat logs the vsock peer as "AF=40 cid:1 port:123".
    slog = open(server_log, errors="replace").read()
    clog = open(client_log, errors="replace").read()
    m = re.search(r"accepting connection from AF=40 cid:(\d+) port:(\d+)", slog)
    if m:
        conn.info["server_accept_peer"] = [int(m.group(1)), int(m.group(2))]
    m = re.search(r"successfully connected from local address AF=40 cid:(\d+) port:(\d+)", clog)
    if m:
        conn.info["client_getsockname"] = [int(m.group(1)), int(m.group(2))]
    conn.info["result"] = "established" if "server_accept_peer" in conn.info else "unknown"
    conn.extra["socat_server_log"] = [ln for ln in slog.splitlines() if " N " in ln]
    conn.extra["socat_client_log"] = [ln for ln in clog.splitlines() if " N " in ln]


def spawn(scn, args, log=None, **kw):
    p = subprocess.Popen(args, stdout=kw.pop("stdout", subprocess.DEVNULL),
                         stderr=open(log, "w") if log else subprocess.DEVNULL, **kw)
    scn.extra.setdefault("commands", []).append(" ".join(args))
    return p


def stop(p, timeout=10):
    if p.poll() is None:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            p.wait(5)
    return p.returncode


TLS_LINES = b"".join(b"line %03d: the quick brown fox jumps over the lazy dog over vsock\n" % i
                     for i in range(64))


def sc_tls(scn):
    """TLS over vsock: openssl s_server (-rev echo) <- socat VSOCK-LISTEN | socat VSOCK-CONNECT <- s_client."""
    d = "/tmp/tls"
    os.makedirs(d, exist_ok=True)
    vport, sport, cport = 4433, 14433, 24433
    c = scn.conn("tls")
    c.info["dst"] = [CID_LOCAL, vport]
    srv = spawn(scn, ["openssl", "s_server", "-accept", "127.0.0.1:%d" % sport, "-naccept", "1",
                      "-cert", "/etc/vmcap/tls.crt", "-key", "/etc/vmcap/tls.key", "-rev", "-quiet"],
                log=d + "/s_server.log", stdin=subprocess.DEVNULL)
    wait_listen(sport, "--tcp")
    ss = spawn(scn, ["socat", "-d", "-d", "-r", d + "/srv_rx", "-R", d + "/srv_tx",
                     "VSOCK-LISTEN:%d" % vport, "TCP:127.0.0.1:%d" % sport], log=d + "/socat_srv.log")
    cs = spawn(scn, ["socat", "-d", "-d", "-r", d + "/cli_tx", "-R", d + "/cli_rx",
                     "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % cport,
                     "VSOCK-CONNECT:%d:%d" % (CID_LOCAL, vport)], log=d + "/socat_cli.log")
    wait_listen(vport)
    wait_listen(cport, "--tcp")
    c.ev("client", "s_client via socat TCP-LISTEN:%d -> VSOCK-CONNECT:1:%d" % (cport, vport))
    cli = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % cport,
                            "-servername", "vsock-tls-test", "-CAfile", "/etc/vmcap/tls.crt",
                            "-verify_return_error", "-quiet", "-brief"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(d + "/s_client.log", "w"))
    scn.extra.setdefault("commands", []).append(" ".join(cli.args))

    def feed():
        time.sleep(0.5)
        cli.stdin.write(TLS_LINES)
        cli.stdin.flush()
        time.sleep(1.0)
        cli.stdin.write(b"CLOSE\n")  # s_server -rev closes the TLS session on this line
        cli.stdin.flush()
        time.sleep(3)
        cli.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    out = cli.stdout.read()
    stop(cli, 10)
    c.ev("client", "s_client exited %s, %d plaintext bytes" % (cli.returncode, len(out)))
    for p in (srv, ss, cs):
        stop(p, 10)
    socat_truth(c, (d + "/cli_tx", d + "/cli_rx"), (d + "/srv_tx", d + "/srv_rx"),
                d + "/socat_cli.log", d + "/socat_srv.log")
    expect = b"".join(ln[::-1] + b"\n" for ln in TLS_LINES.splitlines())
    c.extra["plaintext"] = {"client_sent_bytes": len(TLS_LINES) + 6,
                            "client_sent_sha256": hashlib.sha256(TLS_LINES + b"CLOSE\n").hexdigest(),
                            "client_received_bytes": len(out),
                            "client_received_sha256": hashlib.sha256(out).hexdigest(),
                            "client_received_reversed_lines_ok": out.startswith(expect)}
    c.extra["tls_client_log"] = open(d + "/s_client.log", errors="replace").read().splitlines()[-12:]
    scn.notes.append("openssl s_server -rev (TCP 127.0.0.1:%d) <- socat VSOCK-LISTEN:%d; openssl "
                     "s_client -> socat TCP-LISTEN:%d VSOCK-CONNECT:1:%d. Ground truth of the vsock "
                     "leg from socat -r/-R raw dumps on both ends (send_calls unknown: null). "
                     "Certificate: self-signed RSA 2048, CN=vsock-tls-test, made at guest build time."
                     % (sport, vport, cport, vport))


def sc_ssh(scn):
    """SSH over vsock port 22: sshd on 127.0.0.1:22 <- socat VSOCK-LISTEN:22; ssh with a socat ProxyCommand."""
    d = "/tmp/ssh"
    os.makedirs(d, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    c = scn.conn("ssh")
    c.info["dst"] = [CID_LOCAL, 22]
    sshd = spawn(scn, ["/usr/sbin/sshd", "-D", "-e", "-o", "ListenAddress=127.0.0.1",
                       "-o", "PasswordAuthentication=no", "-o", "UseDNS=no"], log=d + "/sshd.log")
    if not wait_listen(22, "--tcp"):
        scn.errors.append("sshd did not start")
    ss = spawn(scn, ["socat", "-d", "-d", "-r", d + "/srv_rx", "-R", d + "/srv_tx",
                     "VSOCK-LISTEN:22", "TCP:127.0.0.1:22"], log=d + "/socat_srv.log")
    wait_listen(22)
    proxy = "socat -d -d -r %s/cli_tx -R %s/cli_rx - VSOCK-CONNECT:%d:22 2>%s/socat_cli.log" % (
        d, d, CID_LOCAL, d)
    args = ["ssh", "-F", "/dev/null", "-i", "/root/.ssh/id_ed25519", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ProxyCommand=" + proxy, "root@vsock-1", "echo", "hello"]
    scn.extra.setdefault("commands", []).append(" ".join(args))
    c.ev("client", "ssh root@vsock-1 echo hello (ProxyCommand socat VSOCK-CONNECT:1:22)")
    r = subprocess.run(args, capture_output=True, timeout=120)
    c.ev("client", "ssh exited %d, stdout %r" % (r.returncode, r.stdout))
    stop(ss, 10)
    sshd.terminate()
    sshd.wait(10)
    socat_truth(c, (d + "/cli_tx", d + "/cli_rx"), (d + "/srv_tx", d + "/srv_rx"),
                d + "/socat_cli.log", d + "/socat_srv.log")
    c.extra["ssh"] = {"exit_status": r.returncode, "stdout": r.stdout.decode(errors="replace"),
                      "stderr_tail": r.stderr.decode(errors="replace").splitlines()[-5:],
                      "client_version": subprocess.run(["ssh", "-V"], capture_output=True,
                                                       text=True).stderr.strip()}
    if r.stdout != b"hello\n":
        scn.errors.append("ssh did not print hello")
    scn.notes.append("OpenSSH client and server, key authentication (ed25519 made at guest build "
                     "time). The vsock leg is socat on both ends; ground truth from socat -r/-R raw "
                     "dumps (send_calls unknown: null).")


# ---------------------------------------------------------------- resets and unread data

def sc_reset(scn):
    """Connections torn down in the middle of a transfer: SO_LINGER 0 close, and a killed reader."""
    total = 1 << 20
    data = payload(total, 9000)

    def client(c, port):
        rs = connect(scn, c, CID_LOCAL, port)
        off = 0
        try:
            while off < total:
                off += rs.send(data[off:off + 16384])
        except OSError as e:
            c.info["client_send_error"] = errname(e)
            c.ev("client", "send() failed after %d bytes: %s" % (off, errname(e)))
        else:
            c.ev("client", "sent all %d bytes" % off)
        try:
            got = rs.recv(4096)
            c.ev("client", "recv() after the failure -> %d bytes (EOF)" % len(got))
            c.info["client_recv_after"] = "EOF" if not got else "%d bytes" % len(got)
        except OSError as e:
            c.info["client_recv_after"] = errname(e)
            c.ev("client", "recv() after the failure: %s" % errname(e))
        rs.close()
        c.ev("client", "close()")

    # 1: reader sets SO_LINGER {on, 0 s} and closes with data pending.
    ls = listener(9001)
    c1 = scn.conn("linger0_close")

    def linger_server():
        rs, conn = accept(scn, ls)
        rs.set_linger0()
        n = 0
        while n < 100000:
            n += len(rs.recv(16384))
        conn.ev("server", "read %d bytes; SO_LINGER(1,0) close()" % n)
        rs.close()

    scn.thread("server1", linger_server)
    client(c1, 9001)
    scn.join()
    ls.close()

    # 2: the reader is a separate process, killed with SIGKILL mid-transfer.
    c2 = scn.conn("reader_killed")
    rxfile = "/tmp/reset_rx.bin"
    helper = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--helper", "reader",
                               "9002", rxfile], stdout=subprocess.PIPE, text=True)
    assert helper.stdout.readline().startswith("listening")
    t = scn.thread("client2", client, c2, 9002)
    peer = helper.stdout.readline().split()  # "accepted CID PORT"
    end = time.monotonic() + 60
    while time.monotonic() < end and (not os.path.exists(rxfile) or os.path.getsize(rxfile) < 100000):
        time.sleep(0.005)
    helper.send_signal(signal.SIGKILL)
    helper.wait()
    got = open(rxfile, "rb").read()
    c2.ev("server", "reader process killed (SIGKILL) after reading %d bytes" % len(got))
    c2.info.update(server_accept_peer=[int(peer[1]), int(peer[2])], server_getsockname=[CID_LOCAL, 9002])
    c2.c2s.on_recv(got)
    t.join(60)
    scn.threads = []
    scn.notes.append("Each client sends 1 MiB in 16 KiB send()s. linger0_close: the server reads "
                     "about 100 kB and closes with SO_LINGER {1, 0}. reader_killed: a reader process "
                     "is killed by SIGKILL after about 100 kB. 'bytes' is what the client's send() "
                     "accepted before the error, 'received_bytes' what the reader read.")


def helper_reader(port, rxfile):
    ls = listener(port)
    print("listening", flush=True)
    s, peer = ls.accept()
    print("accepted %d %d" % peer, flush=True)
    with open(rxfile, "wb", buffering=0) as f:
        while True:
            d = s.recv(4096)
            if not d:
                break
            f.write(d)
            time.sleep(0.002)


def sc_unread_close(scn):
    """A socket closed with unread data in its receive buffer."""
    ls = listener(10001)
    c = scn.conn("unread_close")
    read_done = threading.Event()

    def server():
        rs, conn = accept(scn, ls)
        time.sleep(0.2)  # let all 20000 bytes arrive
        got = rs.recv(1000)
        conn.ev("server", "read only %d bytes; close() with the rest unread" % len(got))
        rs.close()
        read_done.set()

    scn.thread("server", server)
    rs = connect(scn, c, CID_LOCAL, 10001)
    rs.sendall(payload(20000, 10001))
    c.ev("client", "sent 20000 bytes")
    read_done.wait(30)
    time.sleep(0.2)
    try:
        got = rs.recv(4096)
        c.ev("client", "recv() -> %d bytes%s" % (len(got), " (EOF)" if not got else ""))
    except OSError as e:
        c.ev("client", "recv(): %s" % errname(e))
    try:
        rs.send(b"late data")
        c.ev("client", "send() of 9 late bytes accepted")
    except OSError as e:
        c.ev("client", "send() of late data: %s" % errname(e))
        c.info["client_late_send_error"] = errname(e)
    rs.close()
    c.ev("client", "close()")
    scn.join()
    ls.close()
    scn.notes.append("The client sends 20000 bytes; the server reads 1000 and closes with 19000 "
                     "unread. The client then reads (EOF expected), tries a late send, and closes.")


# ---------------------------------------------------------------- vhost-vsock (nested guest)

VHOST_PORT_H, VHOST_PORT_G = 5000, 5001
VHOST_SIZES = {"guest_to_host": (20000, 60000), "host_to_guest": (50000, 12000)}


def vhost_exchange_client(scn, c, cid, port, nsend, local_cid):
    rs = connect(scn, c, cid, port, local_cid)
    rs.sendall(payload(nsend, port))
    rs.shutdown(socket.SHUT_WR)
    c.ev("client", "sent %d bytes, shutdown(SHUT_WR)" % nsend)
    got = rs.read_to_eof()
    c.ev("client", "EOF after %d bytes; close()" % len(got))
    rs.close()


def vhost_exchange_server(conn, ls, nreply, port):
    """Server side where the client is in the other VM (so no Conn lookup by port)."""
    ls.settimeout(900)
    s, peer = ls.accept()
    s.settimeout(None)
    conn.info.update(result="established", server_getsockname=list(s.getsockname()), server_accept_peer=list(peer))
    conn.ev("server", "accept() -> peer %r" % (peer,))
    rs = RecSock(s, conn, "server")
    got = rs.read_to_eof()
    conn.ev("server", "EOF after %d bytes; replying %d" % (len(got), nreply))
    rs.sendall(payload(nreply, port + 100))
    rs.close()
    conn.ev("server", "close()")


def conn_halves(scn, sides):
    """This VM's half of each connection ("client" or "server" side), for merging with the
    other VM's half."""
    return [{"side": side, "conn": c.to_json()} for c, side in zip(scn.conns, sides)]


def merge_halves(a, b):
    """Merge a client-side and a server-side record of the same connection."""
    cl, sv = (a, b) if a["side"] == "client" else (b, a)
    m = dict(cl["conn"])
    for k in ("server_getsockname", "server_accept_peer"):
        if k in sv["conn"]:
            m[k] = sv["conn"][k]
    if "server_accept_peer" in m:
        m["src"] = {"cid": m["server_accept_peer"][0], "port": m["server_accept_peer"][1]}
    for dname, snd, rcv in (("src_to_dst", cl, sv), ("dst_to_src", sv, cl)):
        d = {k: v for k, v in snd["conn"][dname].items() if k in ("bytes", "sha256", "send_calls")}
        d.update({k: v for k, v in rcv["conn"][dname].items() if k.startswith("received_")})
        m[dname] = finish_direction(d)
    m["events"] = cl["conn"]["events"] + sv["conn"]["events"]
    m["events_clock_note"] = ("client events first, then server events: they come from different "
                              "VMs, each timed from its own scenario start")
    return m


def sc_vhost(scn):
    """Host <-> guest streams through vhost-vsock: this VM is the host (CID 2), a nested
    qemu guest has CID 3. Both directions: guest connects to the host, host to the guest."""
    subprocess.run(["modprobe", "vhost_vsock"], check=True)
    nd = "/tmp/nested"
    subprocess.run(["rm", "-rf", nd])
    os.makedirs(nd + "/out")
    subprocess.run(["cp", "-r", SHARE + "/guest", nd + "/guest"], check=True)
    ls = listener(VHOST_PORT_H)
    c1 = scn.conn("guest_to_host")
    c1.info["dst"] = [CID_HOST, VHOST_PORT_H]
    accel = "kvm" if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.W_OK) else "tcg"
    cmd = ["qemu-system-x86_64", "-accel", accel, "-cpu", "max" if accel == "tcg" else "host",
           "-smp", "1", "-m", "768", "-nodefaults", "-nographic", "-no-reboot",
           "-serial", "stdio", "-monitor", "none",
           "-kernel", SHARE + "/boot/vmlinuz", "-initrd", SHARE + "/boot/nested.cpio",
           "-append", "console=ttyS0 loglevel=4 panic=-1 vmcap.role=nested",
           "-device", "vhost-vsock-pci,guest-cid=%d" % NESTED_CID,
           "-virtfs", "local,path=%s,mount_tag=vmcap,security_model=none" % nd]
    scn.extra["nested_qemu"] = " ".join(cmd)
    scn.extra["nested_accel"] = accel
    t_boot = time.monotonic()
    q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def relay():
        for line in q.stdout:
            sys.stdout.write("  [nested] " + line.decode(errors="replace"))
            sys.stdout.flush()
    threading.Thread(target=relay, daemon=True).start()

    # guest -> host first; when it is done the guest is listening for host -> guest.
    vhost_exchange_server(c1, ls, VHOST_SIZES["guest_to_host"][1], VHOST_PORT_H)
    scn.extra["nested_boot_to_first_connection_s"] = round(time.monotonic() - t_boot, 1)
    ls.close()
    c2 = scn.conn("host_to_guest")
    vhost_exchange_client(scn, c2, NESTED_CID, VHOST_PORT_G, VHOST_SIZES["host_to_guest"][0], CID_HOST)
    try:
        q.wait(900)
    except subprocess.TimeoutExpired:
        scn.errors.append("nested qemu did not exit")
        q.kill()
        q.wait()
    scn.extra["nested_qemu_exit"] = q.returncode
    # Merge with the nested guest's halves.
    try:
        other = json.load(open(nd + "/out/vhost_guest.halves.json"))
    except (OSError, ValueError) as e:
        scn.errors.append("no nested ground truth: %r" % e)
        other = []
    mine = conn_halves(scn, ["server", "client"])
    merged = []
    for h in mine:
        o = [x for x in other if x["conn"]["name"] == h["conn"]["name"]]
        merged.append(merge_halves(h, o[0]) if o else h["conn"])
    scn.merged = merged
    scn.nested_dir = nd
    scn.notes.append("This VM loads vhost_vsock and runs a nested qemu (%s) with vhost-vsock-pci "
                     "guest-cid=3; this VM is CID 2 to it. guest_to_host: the guest connects to "
                     "2:%d, sends %d bytes and half-closes, the host replies %d bytes. host_to_guest: "
                     "the host connects to 3:%d, sends %d bytes, the guest replies %d bytes. "
                     "vhost.pcap is captured on vsockmon0 of the host side (this VM); "
                     "vhost_guest.pcap inside the nested guest."
                     % (accel, VHOST_PORT_H, VHOST_SIZES["guest_to_host"][0], VHOST_SIZES["guest_to_host"][1],
                        VHOST_PORT_G, VHOST_SIZES["host_to_guest"][0], VHOST_SIZES["host_to_guest"][1]))


def sc_vhost_nested(scn):
    """Guest side (inside the nested VM) of sc_vhost."""
    ls = listener(VHOST_PORT_G)
    c1 = scn.conn("guest_to_host")
    vhost_exchange_client(scn, c1, CID_HOST, VHOST_PORT_H, VHOST_SIZES["guest_to_host"][0], NESTED_CID)
    c2 = scn.conn("host_to_guest")
    c2.info["dst"] = [NESTED_CID, VHOST_PORT_G]
    vhost_exchange_server(c2, ls, VHOST_SIZES["host_to_guest"][1], VHOST_PORT_G)
    ls.close()


SCENARIOS = [
    ("stream_basic", sc_stream_basic, 1.0),
    ("refused", sc_refused, 1.0),
    ("credit", sc_credit, 1.0),
    ("multi_halfclose", sc_multi_halfclose, 1.0),
    ("seqpacket", sc_seqpacket, 1.0),
    ("http", sc_http, 1.0),
    ("tls", sc_tls, 1.0),
    ("ssh", sc_ssh, 1.0),
    ("reset", sc_reset, 9.0),         # long enough for an 8 s close timeout RST
    ("unread_close", sc_unread_close, 9.0),
    ("vhost", sc_vhost, 2.0),
]


# ---------------------------------------------------------------- capture driver

def first_lines(args, n=2):
    if not shutil.which(args[0]):
        return None
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip().splitlines()[:n]
    except OSError as e:
        return [repr(e)]


def guest_info(transport):
    u = os.uname()
    tools = {"tcpdump": first_lines(["tcpdump", "--version"]),
             "socat": (first_lines(["socat", "-V"], 3) or [None])[1:],
             "python3": sys.version.split()[0],
             "openssl": first_lines(["openssl", "version"], 1),
             "openssh": first_lines(["ssh", "-V"], 1),
             "iproute2": first_lines(["ip", "-V"], 1)}
    tools["qemu-system-x86_64 (in this VM, runs the nested VM)"] = first_lines(
        ["qemu-system-x86_64", "--version"], 1)
    tools = {k: v for k, v in tools.items() if v}
    try:
        host = json.load(open(SHARE + "/host-info.json"))
    except (OSError, ValueError):
        host = None
    return {"kernel_release": u.release, "kernel_version": u.version,
            "proc_version": open("/proc/version").read().strip(),
            "transport": transport, "tools": tools, "vm_host": host}


class Capture:
    def __init__(self, pcap):
        self.pcap = pcap
        self.p = subprocess.Popen(["tcpdump", "-i", "vsockmon0", "-s", "0", "-U", "-w", pcap],
                                  stderr=subprocess.PIPE, text=True)
        self.banner = self.p.stderr.readline().strip()  # printed once the capture is active
        time.sleep(0.2)

    def stop(self):
        left = subprocess.run(["ss", "-H", "-a", "-n", "--vsock"], capture_output=True, text=True).stdout
        self.p.send_signal(signal.SIGINT)
        rest = self.p.stderr.read()
        self.p.wait(30)
        stats = {}
        for key, pat in (("packets_captured", r"(\d+) packets? captured"),
                         ("packets_received_by_filter", r"(\d+) packets? received by filter"),
                         ("packets_dropped_by_kernel", r"(\d+) packets? dropped by kernel")):
            m = re.search(pat, rest)
            stats[key] = int(m.group(1)) if m else None
        stats.update(interface="vsockmon0", tool="tcpdump -i vsockmon0 -s 0 -U -w",
                     tcpdump_banner=self.banner,
                     sockets_left_at_stop=[ln.strip() for ln in left.splitlines() if ln.strip()])
        return stats


def write_json(path, scenario, description, stats, info, app_seconds, conns, notes, errors, extra):
    doc = {"scenario": scenario, "description": description, "pcap": scenario + ".pcap",
           "pcap_linktype": 271, "capture": stats, "guest": info,
           "address_convention": ADDRESS_CONVENTION, "app_seconds": round(app_seconds, 3),
           "connections": conns, "notes": notes, "errors": errors}
    doc.update(extra)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def run_outer(out, only):
    info = guest_info("vsock_loopback")
    failed = []
    for name, fn, settle in SCENARIOS:
        if only and name not in only:
            continue
        t = time.monotonic()
        print("--- scenario %s" % name, flush=True)
        cap = Capture(os.path.join(out, name + ".pcap"))
        scn = Scenario(name, fn.__doc__.split("\n\n")[0].replace("\n    ", " ").strip())
        try:
            fn(scn)
        except Exception as e:
            import traceback
            traceback.print_exc()
            scn.errors.append("%s: %r" % (errname(e), e))
        app = time.monotonic() - scn.t0
        time.sleep(settle)
        stats = cap.stop()
        conns = getattr(scn, "merged", None) or [c.to_json() for c in scn.conns]
        ginfo = dict(info)
        if name == "vhost":
            ginfo["transport"] = "vhost_vsock (this VM is the host, CID 2; nested guest CID 3)"
        write_json(os.path.join(out, name + ".json"), name, scn.description, stats, ginfo, app,
                   conns, scn.notes, scn.errors, scn.extra)
        if name == "vhost":
            finish_nested(scn, out, conns)
        print("--- scenario %s: %s packets, %d errors, %.1fs %s" % (
            name, stats["packets_captured"], len(scn.errors), time.monotonic() - t,
            scn.errors if scn.errors else ""), flush=True)
        if scn.errors:
            failed.append(name)
    return failed


def finish_nested(scn, out, conns):
    """Copy the nested guest's capture out and give it the merged ground truth."""
    nd = scn.nested_dir + "/out"
    try:
        doc = json.load(open(nd + "/vhost_guest.json"))
    except (OSError, ValueError) as e:
        scn.errors.append("nested capture json missing: %r" % e)
        return
    subprocess.run(["cp", nd + "/vhost_guest.pcap", out + "/vhost_guest.pcap"], check=True)
    doc["connections"] = conns
    doc["notes"] = scn.notes + ["This capture was taken on vsockmon0 inside the nested guest "
                                "(CID 3, virtio-vsock driver); the host side of the same traffic "
                                "is vhost.pcap."]
    with open(out + "/vhost_guest.json", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def run_nested(out):
    info = guest_info("virtio-vsock guest driver (vmw_vsock_virtio_transport), CID 3")
    cap = Capture(os.path.join(out, "vhost_guest.pcap"))
    scn = Scenario("vhost_guest", "")
    try:
        sc_vhost_nested(scn)
    except Exception as e:
        import traceback
        traceback.print_exc()
        scn.errors.append("%s: %r" % (errname(e), e))
    app = time.monotonic() - scn.t0
    time.sleep(2)
    stats = cap.stop()
    halves = conn_halves(scn, ["client", "server"])
    with open(os.path.join(out, "vhost_guest.halves.json"), "w") as f:
        json.dump(halves, f, indent=2)
    write_json(os.path.join(out, "vhost_guest.json"), "vhost_guest",
               "The vhost scenario seen from inside the nested guest (CID 3).", stats, info, app,
               [h["conn"] for h in halves], [], scn.errors, {})
    return ["vhost_guest"] if scn.errors else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("outer", "nested"))
    ap.add_argument("--out")
    ap.add_argument("--only", default="")
    ap.add_argument("--helper", nargs="*")
    a = ap.parse_args()
    if a.helper:
        if a.helper[0] == "reader":
            helper_reader(int(a.helper[1]), a.helper[2])
        return 0
    os.makedirs(a.out, exist_ok=True)
    only = set(x for x in a.only.split(",") if x)
    failed = run_outer(a.out, only) if a.role == "outer" else run_nested(a.out)
    print("VMCAP-SCENARIOS failed=%s" % ",".join(failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
