#!/usr/bin/env python3
"""Makes test-captures/extcap/*.pcap with extcap/vsockhybriddump, and a JSON
of what the programs on both sides sent on each connection (the ground
truth tests/test_extcap.py checks the captures against).

The VMM is tests/fakevmm.py (Firecracker's hybrid vsock over Unix sockets);
the host and guest programs are python and curl. Timestamps differ from run
to run, ports and bytes do not.

    tools/gen_extcap_captures.py [--out test-captures/extcap]
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
from fakevmm import FakeVmm, recv_all, recv_line  # noqa: E402  pylint: disable=wrong-import-position

TOOL = os.path.join(REPO, "extcap", "vsockhybriddump")
TIMEOUT = 30


class Server:
    """A program listening on a Unix socket; HANDLER(sock) returns what it
    received and sent, kept per connection in order of their end."""

    def __init__(self, path, handler):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        self.handler = handler
        self.records = []
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
            self.records.append(self.handler(conn))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def http_server(body_size):
    """HTTP/1.1 keep-alive: answers each request until the client closes."""
    def handler(conn):
        received, sent = bytearray(), bytearray()
        buf = bytearray()
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return bytes(received), bytes(sent)
                received += chunk
                buf += chunk
            head, _, buf = bytes(buf).partition(b"\r\n\r\n")
            buf = bytearray(buf)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = conn.recv(65536)
                received += chunk
                buf += chunk
            del buf[:length]
            path = head.split(b" ")[1]
            body = bytes((i * 7 + 13) % 251 for i in range(body_size)) if path == b"/index.html" \
                else b'{"created": "%s"}\n' % path
            reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body)) + body
            conn.sendall(reply)
            sent += reply
    return handler


def reply_after_eof(conn):
    received = recv_all(conn)
    sent = b"guest read %d bytes\n" % len(received)
    conn.sendall(sent)
    return received, sent


def speak_first(conn):
    sent = b"guest greeting, then the guest shuts its side\n"
    conn.sendall(sent)
    conn.shutdown(socket.SHUT_WR)
    return recv_all(conn), sent


def echo(conn):
    received = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return bytes(received), bytes(received)
        received += chunk
        conn.sendall(chunk)


def summary(data):
    entry = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if len(data) <= 2048:
        entry["hex"] = data.hex()
    return entry


class Run:
    """A fake Firecracker in a temporary folder, and the capture program."""

    started = []    # every capture program started, ended whatever happens

    def __init__(self, guest_connect_ports=(), silent_ports=()):
        self.dir = tempfile.mkdtemp(prefix="vsockhybrid-gen-")
        self.uds = os.path.join(self.dir, "v.sock")
        self.guest = os.path.join(self.dir, "guest")
        os.mkdir(self.guest)
        self.vmm = FakeVmm(self.uds, self.guest, guest_connect_ports, silent_ports)
        self.servers = []
        self.tool = None
        self.errors = None
        self.capture = os.path.join(self.dir, "capture.pcap")
        self.connections = []

    def guest_listen(self, port, handler):
        self.servers.append(Server(os.path.join(self.guest, f"listen_{port}"), handler))
        return self.servers[-1]

    def host_listen(self, port, handler):
        self.servers.append(Server(f"{self.uds}_{port}", handler))
        return self.servers[-1]

    def start(self, mode):
        args = ["--uds", self.uds, "--guest-cid", "3", "-w", self.capture]
        args += ["--in-place"] if mode == "in-place" else ["--proxy", os.path.join(self.dir, "proxy.sock")]
        self.errors = tempfile.TemporaryFile()
        self.tool = subprocess.Popen([TOOL] + args, stderr=self.errors)
        Run.started.append(self.tool)
        wait_for(lambda: "vsockhybriddump: capturing" in self.stderr() or self.tool.poll() is not None)
        if self.tool.poll() is not None:
            raise RuntimeError(f"vsockhybriddump did not start: {self.stderr()}")
        return os.path.join(self.dir, "proxy.sock") if mode == "proxy" else self.uds

    def stderr(self):
        self.errors.seek(0)
        return self.errors.read().decode()

    def stop(self, out):
        self.tool.send_signal(signal.SIGTERM)
        if self.tool.wait(TIMEOUT) != 0:
            raise RuntimeError(self.stderr())
        for server in self.servers:
            server.close()
        self.vmm.stop()
        shutil.copy(self.capture, out)
        shutil.rmtree(self.dir)

    def note(self, name, initiator, result, host_port, guest_port, to_guest, to_host, **extra):
        self.connections.append(dict({
            "name": name, "initiator": initiator, "result": result,
            "host": {"cid": 2, "port": host_port}, "guest": {"cid": 3, "port": guest_port},
            "follow_node0": initiator,
            "host_to_guest": summary(to_guest), "guest_to_host": summary(to_host)}, **extra))


def host_program(path, port, pieces, half_close=True):
    """CONNECT, then each piece; returns (OK line, the bytes after it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    with sock:
        sock.connect(path)
        sock.sendall(b"CONNECT %d\n" % port)
        ok = recv_line(sock)
        for piece in pieces:
            sock.sendall(piece)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return ok, recv_all(sock)


def wait_for(predicate):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def scenario_http(out):
    """In place: a host program's HTTP/1.1 keep-alive exchange with a guest
    server on port 8080 (a 100000-byte body: several PAYLOAD packets), and
    curl in the guest fetching from a host server on <socket>_80."""
    run = Run(guest_connect_ports=[80])
    guest_http = run.guest_listen(8080, http_server(100000))
    host_http = run.host_listen(80, http_server(300))
    path = run.start("in-place")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(path)
    sock.sendall(b"CONNECT 8080\n")
    ok = recv_line(sock)
    get = b"GET /index.html HTTP/1.1\r\nHost: guest\r\nUser-Agent: extcap-test\r\n\r\n"
    sock.sendall(get)
    reply = bytearray()
    while len(reply) < 100000 or b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    post_body = b'{"name": "item", "size": 3}'
    post = (b"POST /api/items HTTP/1.1\r\nHost: guest\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(post_body)) + post_body
    sock.sendall(post)
    sock.shutdown(socket.SHUT_WR)
    reply += recv_all(sock)
    sock.close()
    subprocess.run(["curl", "--silent", "--show-error", "--max-time", "20", "--unix-socket",
                    os.path.join(run.guest, "connect_80"), "http://host.invalid/status"],
                   stdout=subprocess.DEVNULL, check=True, timeout=TIMEOUT)
    wait_for(lambda: len(guest_http.records) == 1 and len(host_http.records) == 1)
    (received, sent), = guest_http.records
    assert received == get + post and sent == bytes(reply)
    run.note("host GET and POST to the guest's port 8080", "host", "established",
             int(ok.split()[1]), 8080, received, sent, ok_line=ok.decode())
    (received, sent), = host_http.records
    run.note("curl in the guest, GET from the host's port 80 (guest port made up)", "guest",
             "established", 80, 1 << 31, sent, received)
    run.stop(os.path.join(out, "http.pcap"))
    return run, "In-place capture: HTTP/1.1 both ways (host to guest port 8080, keep-alive GET of " \
        "100000 bytes and a POST; curl in the guest to the host's port 80)."


def scenario_streams(out):
    """Proxy: a half-close each way, a refused and an unanswered request,
    and four concurrent echo connections with interleaved binary data."""
    run = Run(silent_ports=[77])
    run.guest_listen(52, reply_after_eof)
    run.guest_listen(60, speak_first)
    run.guest_listen(70, echo)
    path = run.start("proxy")

    sent = b"host data, then the host shuts its side\n" * 50
    ok, reply = host_program(path, 52, [sent])
    run.note("host half-closes first", "host", "established", int(ok.split()[1]), 52, sent, reply,
             ok_line=ok.decode())

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(path)
    sock.sendall(b"CONNECT 60\n")
    ok = recv_line(sock)
    greeting = recv_all(sock)
    after = b"the host sends after the guest's half-close\n"
    sock.sendall(after)
    sock.close()
    run.note("guest half-closes first", "host", "established", int(ok.split()[1]), 60, after,
             greeting, ok_line=ok.decode())

    ok, rest = host_program(path, 99, [])
    assert ok == b"" and rest == b""
    wait_for(lambda: 99 in run.vmm.refused)
    run.note("refused: nobody listens on guest port 99 (host port made up)", "host", "refused",
             (1 << 31), 99, b"", b"")

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(b"CONNECT 77\n")
    time.sleep(0.3)
    sock.close()
    wait_for(lambda: 77 in run.vmm.refused)
    run.note("unanswered: the VMM never answers, the host gives up (host port made up)", "host",
             "unanswered", (1 << 31) + 1, 77, b"", b"")

    socks, payloads = [], []
    for i in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(path)
        s.sendall(b"CONNECT 70\n")
        socks.append((s, recv_line(s)))
        payloads.append(b"")
    for round_ in range(6):
        for i, (s, _) in enumerate(socks):
            chunk = bytes(((round_ * 31 + i * 17 + n) % 256) for n in range(3000 + 20000 * (i % 2)))
            s.sendall(chunk)
            payloads[i] += chunk
    for s, _ in socks:
        s.shutdown(socket.SHUT_WR)
    for i, (s, ok) in enumerate(socks):
        echoed = recv_all(s)
        s.close()
        assert echoed == payloads[i]
        run.note(f"concurrent echo {i}", "host", "established", int(ok.split()[1]), 70, payloads[i],
                 echoed, ok_line=ok.decode())
    run.stop(os.path.join(out, "streams.pcap"))
    return run, "Proxy capture: half-closes each way, a refused and an unanswered request, four " \
        "concurrent echo connections with interleaved binary data."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "test-captures", "extcap"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, scenario in (("http", scenario_http), ("streams", scenario_streams)):
        try:
            run, description = scenario(args.out)
        finally:
            for tool in Run.started:
                if tool.poll() is None:
                    tool.terminate()
                    tool.wait(TIMEOUT)
        truth = {
            "scenario": name, "description": description, "pcap": f"{name}.pcap",
            "pcap_linktype": 271, "tool": "extcap/vsockhybriddump", "vmm": "tests/fakevmm.py (Firecracker)",
            "address_convention": "host CID 2, guest CID 3 (--guest-cid); made-up ports are "
                                  "2147483648 + n, n from 0 in each run",
            "connections": run.connections,
        }
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(truth, f, indent=1)
            f.write("\n")
        print(f"{name}.pcap: {len(run.connections)} connections")


if __name__ == "__main__":
    main()
