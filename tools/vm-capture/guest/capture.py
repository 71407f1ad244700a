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
        self.unobserved = None  # "send" or "recv": that end is a program we do not instrument

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
        if side == self.unobserved:
            if side == "send":
                return {"bytes": None, "sha256": None, "send_calls": None}
            return {"received_bytes": None, "received_sha256": None}
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
    if d.get("bytes") is not None and d.get("received_bytes") is not None:
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


# ------------------------------------------------- loopback to CID 2 (host CID, no guest transport)

LC2_PORT = 9002
LC2_CLIENT_SENDS = [10000, 10000, 10000]
LC2_SERVER_SENDS = [10000, 10000]
IOCTL_VM_SOCKETS_GET_LOCAL_CID = 0x7B9


def local_cid():
    """IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock (what the kernel calls this machine's CID)."""
    import fcntl
    try:
        fd = os.open("/dev/vsock", os.O_RDONLY)
    except OSError as e:
        return errname(e)
    try:
        return struct.unpack("I", fcntl.ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\0" * 4))[0]
    finally:
        os.close(fd)


def module_loaded(name):
    return os.path.isdir("/sys/module/" + name)


def sc_loopback_cid2(scn):
    """A client connects to CID 2 (VMADDR_CID_HOST) with vhost_vsock loaded next to
    vsock_loopback and no guest transport: Linux carries the connection over vsock_loopback.

    The server listens on VMADDR_CID_ANY."""
    had_vhost = module_loaded("vhost_vsock")
    scn.extra["local_cid_before"] = local_cid()
    subprocess.run(["modprobe", "vhost_vsock"], check=True)
    scn.extra["local_cid_with_vhost_vsock"] = local_cid()
    scn.extra["modules"] = sorted(m for m in ("vsock", "vsock_loopback", "vhost_vsock",
                                              "vmw_vsock_virtio_transport", "vsockmon")
                                  if module_loaded(m))
    try:
        ls = listener(LC2_PORT)
        scn.extra["server_listen_address"] = list(ls.getsockname())
        c = scn.conn("client_to_cid2")

        def server():
            rs, conn = accept(scn, ls)
            want, got = sum(LC2_CLIENT_SENDS), 0
            while got < want:
                d = rs.recv(65536)
                if not d:
                    break
                got += len(d)
            conn.ev("server", "read %d bytes" % got)
            for i, n in enumerate(LC2_SERVER_SENDS):
                rs.sendall(payload(n, LC2_PORT + 100 + i))
                conn.ev("server", "sent %d bytes" % n)
            rest = rs.read_to_eof()
            conn.ev("server", "EOF from client (%d more bytes); close()" % len(rest))
            rs.close()

        scn.thread("server", server)
        rs = connect(scn, c, CID_HOST, LC2_PORT)
        for i, n in enumerate(LC2_CLIENT_SENDS):
            rs.sendall(payload(n, LC2_PORT + i))
            c.ev("client", "sent %d bytes" % n)
            time.sleep(0.1)  # separate sends, separate RW packets
        want, got = sum(LC2_SERVER_SENDS), 0
        while got < want:
            d = rs.recv(65536)
            if not d:
                break
            got += len(d)
        c.ev("client", "read %d bytes" % got)
        rs.shutdown(socket.SHUT_WR)
        c.ev("client", "shutdown(SHUT_WR)")
        rest = rs.read_to_eof()
        c.ev("client", "EOF from server (%d more bytes); close()" % len(rest))
        rs.close()
        scn.join()
        ls.close()
        time.sleep(0.5)  # let the sockets go before the module is removed
    finally:
        if not had_vhost:
            r = subprocess.run(["modprobe", "-r", "vhost_vsock"], capture_output=True, text=True)
            scn.extra["vhost_vsock_unloaded_after"] = r.returncode == 0 and not module_loaded("vhost_vsock")
            if r.returncode:
                scn.errors.append("modprobe -r vhost_vsock: " + r.stderr.strip())
        else:
            scn.extra["vhost_vsock_unloaded_after"] = False
    x = scn.conns[0].info
    port = x["client_getsockname"][1]
    # What vsock_loopback puts on the wire (from the kernel's code; verify.py checks the capture).
    scn.extra["wire_addresses_expected"] = {
        "client_to_server": {"src": [CID_LOCAL, port], "dst": [CID_HOST, LC2_PORT],
                             "packets": "all the client's socket sends (REQUEST first)"},
        "server_to_client": {"src": [CID_LOCAL, LC2_PORT], "dst": [CID_LOCAL, port],
                             "packets": "all the accepted socket sends (RESPONSE first)"},
        "why": "the client's packets keep the address it connected to (2:P) as destination; "
               "every packet's source CID is vsock_loopback's own CID 1. The server's accepted "
               "socket has local address 2:P and peer 1:x, but its replies leave with source "
               "CID 1, so they read 1:P -> 1:x."}
    scn.notes.append("vhost_vsock is loaded (it registers the host-to-guest transport and makes "
                     "IOCTL_VM_SOCKETS_GET_LOCAL_CID report 2) while no guest transport exists; a "
                     "connect() to CID 2 then uses vsock_loopback. The client sends %s bytes in %d "
                     "send calls, the server reads them and replies %s bytes in %d calls, the client "
                     "half-closes, the server closes on EOF, the client reads EOF and closes. "
                     "vhost_vsock is unloaded afterwards when this scenario loaded it."
                     % (sum(LC2_CLIENT_SENDS), len(LC2_CLIENT_SENDS), sum(LC2_SERVER_SENDS),
                        len(LC2_SERVER_SENDS)))


# ------------------------------------------------- qemu-guest-agent over vsock

QGA_PORT = 4455
QGA_QUIET = 1.5
QGA_LINES = [
    ("guest-sync-delimited", b"\xff" + b'{"execute": "guest-sync-delimited", "arguments": {"id": 1234567}}\n'),
    ("guest-sync", b'{"execute": "guest-sync", "arguments": {"id": 7654321}}\n'),
    ("guest-ping", b'{"execute": "guest-ping"}\n'),
    ("guest-info", b'{"execute": "guest-info"}\n'),
    ("guest-get-osinfo", b'{"execute": "guest-get-osinfo"}\n'),
    ("guest-get-host-name", b'{"execute": "guest-get-host-name"}\n'),
    ("guest-get-time", b'{"execute": "guest-get-time", "id": "req-7"}\n'),
    ("guest-no-such-command", b'{"execute": "guest-no-such-command"}\n'),
    (None, b'{"execute": "guest-ping" "arguments": {}}\n'),  # malformed: no comma
    ("guest-sync", b'{"execute": "guest-sync", "arguments": {"id": 42}}\n'),
]


def end_daemon(p):
    """SIGTERM a daemon we started (it never exits by itself) and collect its exit status."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


def line_doc(b):
    """One line as sent or read. text is lossy for non-UTF-8 bytes (0xFF shows as \\xff);
    hex is exact (lines up to 512 bytes)."""
    d = {"text": b.decode("utf-8", "backslashreplace"), "bytes": len(b),
         "sha256": hashlib.sha256(b).hexdigest()}
    if len(b) <= 512:
        d["hex"] = b.hex()
    return d


class LineReader:
    """Newline-delimited replies from a RecSock, with a timeout per line."""

    def __init__(self, rs):
        self.rs, self.buf, self.eof = rs, b"", False

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.rs.sock.settimeout(left)
            try:
                d = self.rs.recv(65536)
            except socket.timeout:
                return None
            finally:
                self.rs.sock.settimeout(None)
            if not d:
                self.eof = True
            self.buf += d
        if b"\n" in self.buf:
            ln, self.buf = self.buf.split(b"\n", 1)
            return ln + b"\n"
        ln, self.buf = self.buf, b""
        return ln or None


def sc_qemu_ga(scn):
    """qemu-guest-agent listening on vsock (qemu-ga --method=vsock-listen) answering
    newline-delimited JSON commands, one at a time, from a Python AF_VSOCK client via CID 1."""
    st = "/tmp/qga-state"
    os.makedirs(st, exist_ok=True)
    cmd = ["qemu-ga", "--method=vsock-listen", "--path=%d:%d" % (CID_ANY, QGA_PORT),
           "--statedir=" + st, "--pidfile=" + st + "/qemu-ga.pid", "--logfile=" + st + "/qemu-ga.log"]
    scn.extra["qemu_ga_version"] = first_lines(["qemu-ga", "-V"], 1)
    scn.extra["qemu_ga_command"] = " ".join(cmd)
    p = spawn(scn, cmd)
    try:
        if not wait_listen(QGA_PORT, timeout=30):
            raise RuntimeError("qemu-ga does not listen on port %d" % QGA_PORT)
        scn.extra["qemu_ga_listen_socket"] = subprocess.run(
            ["ss", "-H", "-n", "-l", "--vsock"], capture_output=True, text=True).stdout.split("\n")
        scn.extra["qemu_ga_listen_socket"] = [x.strip() for x in scn.extra["qemu_ga_listen_socket"]
                                              if ":%d " % QGA_PORT in x + " "]
        c = scn.conn("qga_client")
        c.c2s.unobserved, c.s2c.unobserved = "recv", "send"  # qemu-ga is not instrumented
        rs = connect(scn, c, CID_LOCAL, QGA_PORT)
        rd = LineReader(rs)
        exchanges, sent_lines, recv_lines = [], [], []
        for name, line in QGA_LINES:
            rs.sendall(line)
            sent_lines.append(line_doc(line))
            # The first reply, then whatever else comes within QGA_QUIET seconds (qemu-ga may
            # answer one line with two replies, e.g. an error for a stray byte first).
            replies = []
            r = rd.line(60)
            while r is not None:
                replies.append(r)
                r = rd.line(QGA_QUIET)
            recv_lines += [line_doc(r) for r in replies]
            ex = {"command": name or "(malformed JSON)", "sent": line_doc(line),
                  "replies": [line_doc(r) for r in replies]}
            for r in replies:
                try:
                    j = json.loads(r.lstrip(b"\xff"))
                    ex.setdefault("reply_kind", []).append("error" if "error" in j else "return")
                except ValueError:
                    ex.setdefault("reply_kind", []).append("not json")
            exchanges.append(ex)
            c.ev("client", "sent %s (%d bytes), %d reply line(s)" % (ex["command"], len(line), len(replies)))
            if not replies:
                scn.errors.append("no reply to %s" % ex["command"])
        rs.shutdown(socket.SHUT_WR)
        c.ev("client", "shutdown(SHUT_WR)")
        rest = rs.read_to_eof()
        if rest or rd.buf:
            scn.errors.append("unexpected data after the last reply: %r" % (rd.buf + rest)[:200])
        c.ev("client", "EOF from qemu-ga; close()")
        rs.close()
        c.extra.update(qga_exchanges=exchanges, lines_sent=sent_lines, lines_received=recv_lines,
                       command_names=[name or "(malformed JSON)" for name, _ in QGA_LINES])
        time.sleep(0.3)
    finally:
        scn.extra["qemu_ga_exit_status"] = end_daemon(p)
        try:
            scn.extra["qemu_ga_log"] = open(st + "/qemu-ga.log", errors="replace").read().splitlines()
        except OSError:
            pass
    scn.notes.append("qemu-ga (Debian's qemu-guest-agent) listens on VMADDR_CID_ANY port %d; the "
                     "client connects to 1:%d and sends one line at a time, waiting for the reply: "
                     "a 0xFF byte then guest-sync-delimited (the reply starts with 0xFF too), "
                     "guest-sync, guest-ping, guest-info, guest-get-osinfo, guest-get-host-name, "
                     "guest-get-time with a top-level \"id\" (echoed in the reply), an unknown "
                     "command, a malformed JSON line (missing comma) and a final guest-sync; then it "
                     "half-closes and reads qemu-ga's close. After each line the client takes the "
                     "first reply line and any further ones arriving within %.1f s, so "
                     "qga_exchanges pairs replies with requests by timing; lines_sent and "
                     "lines_received are the exact streams. qemu-ga's own reads and writes are not "
                     "instrumented: the ground truth of each direction is the client's side "
                     "(bytes sent; replies read)." % (QGA_PORT, QGA_PORT, QGA_QUIET))


# ------------------------------------------------- gvproxy (gvisor-tap-vsock) over vsock

GV_PORT = 1024
GV_NS = "gvns"
GV_TAP = "gvtap0"
GV_MAC = "5a:94:ef:e4:0c:ee"      # gvproxy's static DHCP lease 192.168.127.2 is for this MAC
GV_HTTP_PORT = 8089               # on 127.0.0.1 in this VM's root namespace
GV_TUN_PORT = 7777                # TCP server inside the namespace, reached by /tunnel
GV_TUN_SIZES = (5000, 8000)
GV_DIR = "/tmp/gv"
# Go's http.Request.Write of http.NewRequest("POST", path, nil), as gvisor-tap-vsock's VM side
# (cmd/vm, pkg/transport/tunnel.go) writes it: empty Host, Go's User-Agent, Content-Length: 0.
GO_POST = b"POST %s HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n"
_GV_LINES = b"".join(b"gvproxy NAT test body, line %05d, 192.168.127.254 -> 127.0.0.1\n" % i
                     for i in range(800))
GV_BODY = _GV_LINES[:50000]
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000


def frame_summary(f):
    """A short description of an Ethernet frame (the forwarder's own view of its bytes)."""
    if len(f) < 14:
        return "runt"
    et = struct.unpack("!H", f[12:14])[0]
    s = "%s > %s " % (f[6:12].hex(":"), f[0:6].hex(":"))
    if et == 0x0806 and len(f) >= 42:
        op = struct.unpack("!H", f[20:22])[0]
        return s + "ARP %s %s -> %s" % ({1: "request", 2: "reply"}.get(op, op),
                                         socket.inet_ntoa(f[28:32]), socket.inet_ntoa(f[38:42]))
    if et == 0x0800 and len(f) >= 34:
        ihl = (f[14] & 15) * 4
        proto = f[23]
        src, dst = socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34])
        l4 = f[14 + ihl:]
        if proto in (6, 17) and len(l4) >= 4:
            sp, dp = struct.unpack("!HH", l4[:4])
            if proto == 6 and len(l4) >= 20:
                flags = l4[13]
                names = "".join(n for b, n in ((2, "S"), (16, "."), (8, "P"), (1, "F"), (4, "R"))
                                if flags & b)
                plen = struct.unpack("!H", f[16:18])[0] - ihl - (l4[12] >> 4) * 4
                return s + "IPv4 TCP %s:%d -> %s:%d [%s] len %d" % (src, sp, dst, dp, names, plen)
            return s + "IPv4 UDP %s:%d -> %s:%d len %d" % (src, sp, dst, dp, len(l4) - 8)
        return s + "IPv4 proto %d %s -> %s" % (proto, src, dst)
    return s + "ethertype 0x%04x" % et


class Forwarder:
    """The VM side of gvisor-tap-vsock written in Python: a TAP device whose frames travel over
    an AF_VSOCK stream to gvproxy, each preceded by its length (2 bytes, little endian), after
    a POST /connect request (as gvisor-tap-vsock's cmd/vm does)."""

    def __init__(self, scn, conn):
        import fcntl
        self.scn, self.conn = scn, conn
        self.frames, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.tap = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(self.tap, TUNSETIFF, struct.pack("16sH", GV_TAP.encode(), IFF_TAP | IFF_NO_PI))
        self.rs = None
        self.threads = []

    def connect(self):
        self.rs = connect(self.scn, self.conn, CID_LOCAL, GV_PORT)
        req = GO_POST % b"/connect"
        self.rs.sendall(req)
        self.conn.ev("client", "sent POST /connect (%d bytes)" % len(req))
        return req

    def record(self, direction, f):
        with self.lock:
            self.frames.append({"n": len(self.frames) + 1, "direction": direction, "len": len(f),
                                "sha256": hashlib.sha256(f).hexdigest(),
                                "t": round(time.monotonic() - self.scn.t0, 4),
                                "summary": frame_summary(f)})

    def start(self):
        for name, fn in (("tap->vsock", self.tap_to_vsock), ("vsock->tap", self.vsock_to_tap)):
            t = threading.Thread(target=self.guard, args=(name, fn), daemon=True)
            t.start()
            self.threads.append(t)

    def guard(self, name, fn):
        try:
            fn()
        except Exception as e:
            self.scn.errors.append("forwarder %s: %s: %r" % (name, errname(e), e))

    def tap_to_vsock(self):
        import select
        while not self.stop.is_set():
            r, _, _ = select.select([self.tap], [], [], 0.2)
            if not r:
                continue
            f = os.read(self.tap, 65536)
            self.record("vm_to_gvproxy", f)
            self.rs.sendall(struct.pack("<H", len(f)) + f)  # one send per frame, as cmd/vm does

    def read_exact(self, n):
        b = b""
        while len(b) < n:
            d = self.rs.recv(n - len(b))
            if not d:
                return None
            b += d
        return b

    def vsock_to_tap(self):
        while True:
            h = self.read_exact(2)
            if h is None:
                self.conn.ev("client", "EOF from gvproxy")
                return
            n = struct.unpack("<H", h)[0]
            f = self.read_exact(n)
            if f is None:
                self.scn.errors.append("forwarder: EOF inside a frame")
                return
            self.record("gvproxy_to_vm", f)
            os.write(self.tap, f)

    def close(self):
        """Stop reading the TAP, half-close towards gvproxy, wait for its close."""
        self.stop.set()
        self.threads[0].join(5)
        self.rs.shutdown(socket.SHUT_WR)
        self.conn.ev("client", "shutdown(SHUT_WR)")
        self.threads[1].join(30)
        self.rs.close()
        self.conn.ev("client", "close()")
        os.close(self.tap)


UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc event script: record the lease (udhcpc's variables), configure the interface.
case $1 in
deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
    env | grep -E '^(interface|ip|siaddr|sname|boot_file|subnet|mask|broadcast|router|dns|domain|search|hostname|lease|serverid|mtu|timezone|ntpsrv|opt[0-9]+)=' | sort >"%s/lease.$1.env"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    ;;
esac
exit 0
""" % GV_DIR


def ns(*args, **kw):
    return subprocess.run(["ip", "netns", "exec", GV_NS] + list(args), capture_output=True,
                          text=True, timeout=kw.pop("timeout", 60), **kw)


def dns_query(name, qid=0x4756):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return q + struct.pack("!HH", 1, 1)


def dns_parse(r):
    def name_at(off):
        parts, jumped, end = [], False, off
        while True:
            n = r[off]
            if n & 0xC0 == 0xC0:
                if not jumped:
                    end = off + 2
                off, jumped = ((n & 0x3F) << 8) | r[off + 1], True
                continue
            if n == 0:
                return ".".join(parts), (end if jumped else off + 1)
            parts.append(r[off + 1:off + 1 + n].decode())
            off += n + 1
    qid, flags, qd, an, ns_, ar = struct.unpack("!HHHHHH", r[:12])
    off = 12
    for _ in range(qd):
        _, off = name_at(off)
        off += 4
    answers = []
    for _ in range(an):
        nm, off = name_at(off)
        t, cl, ttl, ln = struct.unpack("!HHIH", r[off:off + 10])
        data = r[off + 10:off + 10 + ln]
        off += 10 + ln
        answers.append({"name": nm, "type": t, "class": cl, "ttl": ttl,
                        "data": socket.inet_ntoa(data) if t == 1 and ln == 4 else data.hex()})
    return {"id": qid, "flags": "0x%04x" % flags, "rcode": flags & 15, "answers": answers}


def helper_gvclient(out_path):
    """Runs inside the gvns namespace: DNS query to gvproxy, then HTTP GET through its NAT."""
    res = {}
    name = "host.containers.internal"
    q = dns_query(name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    s.sendto(q, ("192.168.127.1", 53))
    r, peer = s.recvfrom(4096)
    s.close()
    res["dns"] = {"server": "192.168.127.1:53", "query_name": name, "query_type": "A",
                  "query_hex": q.hex(), "response_hex": r.hex(),
                  "response_sha256": hashlib.sha256(r).hexdigest(), "response_from": list(peer),
                  "parsed": dns_parse(r)}
    addrs = [a["data"] for a in res["dns"]["parsed"]["answers"] if a["type"] == 1]
    ip = addrs[0] if addrs else "192.168.127.254"
    hc = http.client.HTTPConnection(ip, GV_HTTP_PORT, timeout=60)
    hc.request("GET", "/body.txt", headers={"User-Agent": "vmcap-gvproxy-test/1.0"})
    resp = hc.getresponse()
    body = resp.read()
    local = hc.sock.getsockname() if hc.sock else None
    hc.close()
    res["http"] = {"url": "http://%s:%d/body.txt" % (ip, GV_HTTP_PORT), "status": resp.status,
                   "headers": resp.getheaders(), "body_len": len(body),
                   "body_sha256": hashlib.sha256(body).hexdigest(),
                   "client_address": list(local) if local else None}
    json.dump(res, open(out_path, "w"), indent=2)


def helper_gvtunsrv(out_path):
    """Runs inside the gvns namespace: the TCP server that gvproxy's /tunnel dials."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("192.168.127.2", GV_TUN_PORT))
    ls.listen(1)
    print("listening", flush=True)
    ls.settimeout(120)
    s, peer = ls.accept()
    got = b""
    while len(got) < GV_TUN_SIZES[0]:
        d = s.recv(65536)
        if not d:
            break
        got += d
    reply = payload(GV_TUN_SIZES[1], GV_TUN_PORT + 1)
    s.sendall(reply)
    s.close()
    ls.close()
    json.dump({"listen": ["192.168.127.2", GV_TUN_PORT], "accepted_from": list(peer),
               "received_bytes": len(got), "received_sha256": hashlib.sha256(got).hexdigest(),
               "sent_bytes": len(reply), "sent_sha256": hashlib.sha256(reply).hexdigest()},
              open(out_path, "w"), indent=2)


class GvHTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = []

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(GV_BODY)))
        self.end_headers()
        self.wfile.write(GV_BODY)
        self.served.append({"request_line": self.requestline, "client": list(self.client_address),
                            "body_len": len(GV_BODY)})

    def log_message(self, *a):
        pass


def sc_gvproxy(scn):
    """gvproxy (gvisor-tap-vsock, as Podman machine and CRC use it) listening on vsock port
    1024, with a Python VM-side forwarder relaying a TAP device's Ethernet frames over AF_VSOCK
    (POST /connect, then frames with a 2-byte little-endian length); DHCP, DNS and an HTTP GET
    through gvproxy's NAT cross it; then one POST /tunnel connection."""
    subprocess.run(["rm", "-rf", GV_DIR])
    os.makedirs(GV_DIR)
    subprocess.run(["modprobe", "tun"], check=True)
    script = GV_DIR + "/udhcpc.script"
    with open(script, "w") as f:
        f.write(UDHCPC_SCRIPT)
    os.chmod(script, 0o755)
    me = os.path.abspath(__file__)
    # gvproxy's DNS service refuses to start without /etc/hosts and an IPv4 nameserver in
    # /etc/resolv.conf (it forwards names outside its own zones there; none are asked here).
    made = []
    for path, text in (("/etc/hosts", "127.0.0.1\tlocalhost\n"), ("/etc/resolv.conf", "nameserver 127.0.0.1\n")):
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
            made.append(path)
    scn.extra["files_made_for_gvproxy"] = {p: open(p).read() for p in made}
    scn.extra["gvproxy_version"] = first_lines(["gvproxy", "-version"], 1)
    cmd = ["gvproxy", "-listen", "vsock://:%d" % GV_PORT, "-ssh-port", "-1",
           "-log-file", GV_DIR + "/gvproxy.log"]
    gv = spawn(scn, cmd)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", GV_HTTP_PORT), GvHTTPHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    fw = None
    try:
        if not wait_listen(GV_PORT, timeout=60):
            raise RuntimeError("gvproxy does not listen on vsock port %d" % GV_PORT)
        scn.extra["gvproxy_listen_socket"] = [x.strip() for x in subprocess.run(
            ["ss", "-H", "-n", "-l", "--vsock"], capture_output=True, text=True).stdout.splitlines()
            if ":%d " % GV_PORT in x + " "]
        for a in (["ip", "netns", "add", GV_NS],
                  ["ip", "netns", "exec", GV_NS, "sh", "-c",
                   "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6; "
                   "echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6"],
                  ["ip", "-n", GV_NS, "link", "set", "lo", "up"]):
            subprocess.run(a, check=True)
        c = scn.conn("forwarder")
        c.c2s.unobserved, c.s2c.unobserved = "recv", "send"  # gvproxy is not instrumented
        fw = Forwarder(scn, c)
        req = fw.connect()
        c.extra["post_request"] = {"text": req.decode(), "hex": req.hex(), "bytes": len(req),
                                   "sha256": hashlib.sha256(req).hexdigest()}
        # The TAP goes to its own namespace (its file descriptor stays ours), so the DHCP, DNS and
        # HTTP traffic of that namespace can only leave through the forwarder.
        for a in (["ip", "link", "set", GV_TAP, "netns", GV_NS],
                  ["ip", "-n", GV_NS, "link", "set", GV_TAP, "address", GV_MAC, "mtu", "1500", "up"]):
            subprocess.run(a, check=True)
        time.sleep(0.3)  # gvproxy hijacks the HTTP connection before the first frame
        fw.start()
        c.ev("client", "relaying frames")
        r = ns("udhcpc", "-f", "-q", "-n", "-i", GV_TAP, "-s", script, "-t", "5", "-T", "3",
               timeout=120)
        c.ev("client", "udhcpc exit %d" % r.returncode)
        lease = {}
        for fn in sorted(os.listdir(GV_DIR)):
            if fn.startswith("lease."):
                for ln in open(os.path.join(GV_DIR, fn)):
                    k, _, v = ln.rstrip("\n").partition("=")
                    lease[k] = v
                lease["event"] = fn.split(".")[1]
        scn.extra["dhcp"] = {"client": "udhcpc (busybox) -f -q -n -i %s" % GV_TAP,
                             "exit_status": r.returncode, "lease": lease,
                             "udhcpc_output": (r.stdout + r.stderr).splitlines(),
                             "addresses_after": ns("ip", "-4", "-o", "addr", "show", GV_TAP).stdout.strip(),
                             "routes_after": ns("ip", "-4", "route").stdout.strip().splitlines()}
        if r.returncode or lease.get("ip") != "192.168.127.2":
            raise RuntimeError("DHCP failed: %r" % scn.extra["dhcp"])
        r = ns(sys.executable, me, "--helper", "gvclient", GV_DIR + "/client.json", timeout=180)
        c.ev("client", "namespace client (DNS + HTTP) exit %d" % r.returncode)
        if r.returncode:
            raise RuntimeError("namespace client failed: %s" % (r.stdout + r.stderr)[-2000:])
        res = json.load(open(GV_DIR + "/client.json"))
        scn.extra["dns"] = res["dns"]
        scn.extra["http"] = res["http"]
        scn.extra["http"]["server"] = {"listen": ["127.0.0.1", GV_HTTP_PORT],
                                       "body_len": len(GV_BODY),
                                       "body_sha256": hashlib.sha256(GV_BODY).hexdigest(),
                                       "requests": GvHTTPHandler.served}
        if res["http"]["body_sha256"] != hashlib.sha256(GV_BODY).hexdigest():
            scn.errors.append("HTTP body mismatch")
        tunnel(scn, me)
        time.sleep(0.5)
    finally:
        if fw and fw.rs:
            fw.close()
        srv.shutdown()
        srv.server_close()
        scn.extra["gvproxy_exit_status"] = end_daemon(gv)
        subprocess.run(["ip", "netns", "del", GV_NS], stderr=subprocess.DEVNULL)
        for path in made:
            os.unlink(path)
        try:
            scn.extra["gvproxy_log"] = open(GV_DIR + "/gvproxy.log", errors="replace").read().splitlines()
        except OSError:
            pass
    if fw:
        fr = fw.frames
        c.extra["frames"] = fr
        c.extra["frame_totals"] = {
            d: {"frames": sum(1 for x in fr if x["direction"] == d),
                "bytes": sum(x["len"] for x in fr if x["direction"] == d)}
            for d in ("vm_to_gvproxy", "gvproxy_to_vm")}
    scn.notes.append(
        "%s runs in this VM with -listen vsock://:%d -ssh-port -1 (its HTTP mux on vsock). "
        "The forwarder (capture.py's Forwarder, written after gvisor-tap-vsock's cmd/vm) opens TAP "
        "%s, connects AF_VSOCK to 1:%d, writes POST /connect exactly as Go's http.Request.Write does "
        "(no reply: gvproxy hijacks the connection), moves the TAP into network namespace %s (MAC "
        "%s, IPv6 off) and relays frames: 2-byte little-endian length + Ethernet frame, one send() "
        "per frame each way (gvproxy also writes each length+frame in one write). In the namespace: "
        "udhcpc gets 192.168.127.2, a DNS A query for host.containers.internal goes to gvproxy's "
        "DNS at 192.168.127.1, and an HTTP GET to 192.168.127.254:%d reaches, through gvproxy's NAT, "
        "a Python HTTP server on 127.0.0.1:%d of this VM (%d-byte body). Then a second AF_VSOCK "
        "connection sends POST /tunnel?ip=192.168.127.2&port=%d, reads gvproxy's 2 bytes OK and "
        "exchanges raw TCP with a server in the namespace (%d bytes up, %d down; that TCP flow also "
        "crosses the forwarder as frames). Finally the forwarder half-closes and gvproxy closes. "
        "gvproxy's side is not instrumented: per direction the ground truth is the forwarder's "
        "(bytes sent, bytes read)."
        % ((scn.extra.get("gvproxy_version") or ["gvproxy"])[0], GV_PORT, GV_TAP, GV_PORT, GV_NS, GV_MAC,
           GV_HTTP_PORT, GV_HTTP_PORT, len(GV_BODY), GV_TUN_PORT, GV_TUN_SIZES[0], GV_TUN_SIZES[1]))


def tunnel(scn, me):
    """POST /tunnel on a second vsock connection to gvproxy: raw TCP to a server in the namespace."""
    p = subprocess.Popen(["ip", "netns", "exec", GV_NS, sys.executable, me, "--helper", "gvtunsrv",
                          GV_DIR + "/tunsrv.json"], stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "listening":
        raise RuntimeError("tunnel server did not start")
    c = scn.conn("tunnel")
    c.c2s.unobserved, c.s2c.unobserved = "recv", "send"
    rs = connect(scn, c, CID_LOCAL, GV_PORT)
    path = b"/tunnel?ip=192.168.127.2&port=%d" % GV_TUN_PORT
    req = GO_POST % path
    rs.sendall(req)
    c.ev("client", "sent POST %s (%d bytes)" % (path.decode(), len(req)))
    ok = b""
    while len(ok) < 2:
        d = rs.recv(2 - len(ok))
        if not d:
            break
        ok += d
    c.ev("client", "handshake reply %r" % ok)
    data = payload(GV_TUN_SIZES[0], GV_TUN_PORT)
    rs.sendall(data)
    c.ev("client", "sent %d bytes" % len(data))
    reply = rs.read_to_eof()
    c.ev("client", "EOF after %d bytes; close()" % len(reply))
    rs.close()
    p.wait(60)
    srv = json.load(open(GV_DIR + "/tunsrv.json"))
    c.extra["tunnel"] = {
        "post_request": {"text": req.decode(), "hex": req.hex(), "bytes": len(req),
                         "sha256": hashlib.sha256(req).hexdigest()},
        "handshake_reply": ok.decode(errors="backslashreplace"),
        "client_sent_after_handshake": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "client_read_after_handshake": {"bytes": len(reply) if ok == b"OK" else None,
                                        "sha256": hashlib.sha256(reply).hexdigest()},
        "tcp_server_in_namespace": srv}
    if ok != b"OK":
        scn.errors.append("tunnel handshake reply %r" % ok)
    if srv["received_sha256"] != hashlib.sha256(data).hexdigest() or \
            srv["sent_sha256"] != hashlib.sha256(reply).hexdigest():
        scn.errors.append("tunnel data mismatch")


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
    # The three below run before vhost: loopback_cid2 loads vhost_vsock and removes it again, and
    # gvproxy binds to the CID /dev/vsock reports, which is 2 while vhost_vsock is loaded.
    ("loopback_cid2", sc_loopback_cid2, 1.0),
    ("qemu_ga", sc_qemu_ga, 1.0),
    ("gvproxy", sc_gvproxy, 1.0),
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
        elif a.helper[0] == "gvclient":
            helper_gvclient(a.helper[1])
        elif a.helper[0] == "gvtunsrv":
            helper_gvtunsrv(a.helper[1])
        return 0
    os.makedirs(a.out, exist_ok=True)
    only = set(x for x in a.only.split(",") if x)
    failed = run_outer(a.out, only) if a.role == "outer" else run_nested(a.out)
    print("VMCAP-SCENARIOS failed=%s" % ",".join(failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
