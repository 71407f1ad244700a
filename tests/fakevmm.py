"""A user-space VMM's hybrid vsock, as Firecracker implements it, for tests.

Unix sockets stand for the guest's AF_VSOCK sockets, so nothing here needs
vsock: a guest program listening on vsock port P listens at
GUEST_DIR/listen_P, and a guest program connecting to the host's port P
connects to GUEST_DIR/connect_P (the fake VMM listens there for the ports it
is given).

Firecracker's behaviour (docs/vsock.md and its muxer):
- host-initiated: it accepts on UDS, reads "CONNECT <port>\\n" (at least 10
  bytes, then one at a time up to the newline or 32 bytes, "connect" in any
  case), connects to the guest's listener, answers "OK <host port>\\n" with
  host ports given round robin from 2^30, then relays. Nobody listening in
  the guest: it closes the host's connection without an answer. A malformed
  request: the same.
- guest-initiated: it connects to "UDS_<port>"; nobody there: the guest's
  connection is reset (closed here).
Data after the CONNECT line stays in the socket until the connection is
established, then is relayed. Each half-close is passed on.

ok_port="guest" answers as vhost-device-vsock does: "OK <the guest's port>".
"""

import os
import socket
import threading

FIRST_HOST_PORT = 1 << 30


def recv_all(sock):
    """Everything until the peer closes."""
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def recv_line(sock):
    """One line, its newline included (less if the peer closes first)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def read_connect_line(sock):
    """Firecracker's read_local_stream_port(): the port, or None."""
    buf = bytearray()
    while len(buf) < 10:
        chunk = sock.recv(10 - len(buf))
        if not chunk:
            return None
        buf += chunk
    while buf[-1:] != b"\n" and len(buf) < 32:
        chunk = sock.recv(1)
        if not chunk:
            return None
        buf += chunk
    words = bytes(buf).split()
    if len(words) < 2 or words[0].lower() != b"connect" or not words[1].isdigit():
        return None
    port = int(words[1])
    return port if port <= 0xFFFFFFFF else None


def pump(src, dst, record):
    """Copies SRC to DST until SRC's end, then shuts DST's write side."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            record += data
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Relayed:
    """What the fake VMM passed on one connection, each way."""

    def __init__(self, kind, guest_port, host_port):
        self.kind = kind            # "host" (host-initiated) or "guest"
        self.guest_port = guest_port
        self.host_port = host_port
        self.to_guest = bytearray()
        self.to_host = bytearray()
        self.done = threading.Event()


class FakeVmm:
    """Starts listening at UDS on creation; stop() closes everything."""

    def __init__(self, uds, guest_dir, guest_connect_ports=(), silent_ports=(), ok_port="host"):
        self.uds = uds
        self.ok_port = ok_port
        self.guest_dir = guest_dir
        self.silent_ports = set(silent_ports)
        self.next_port = FIRST_HOST_PORT
        self.lock = threading.Lock()
        self.relayed = []
        self.refused = []           # ports of host requests closed unanswered
        self.sockets = []
        self.threads = []
        self.stopping = False
        self.listener = self._listen(uds)
        self._thread(self._accept_host)
        for port in guest_connect_ports:
            listener = self._listen(os.path.join(guest_dir, f"connect_{port}"))
            self._thread(self._accept_guest, listener, port)

    def _listen(self, path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(128)
        self.sockets.append(sock)
        return sock

    def _thread(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accepting(self, listener):
        while not self.stopping:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            self.sockets.append(sock)
            yield sock

    def _accept_host(self):
        for sock in self._accepting(self.listener):
            self._thread(self._host_connection, sock)

    def _host_connection(self, host):
        port = read_connect_line(host)
        if port is None:
            host.close()
            return
        if port in self.silent_ports:
            # The guest never answers: hold the connection until the host
            # program gives up.
            while host.recv(65536):
                pass
            with self.lock:
                self.refused.append(port)
            host.close()
            return
        guest = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            guest.connect(os.path.join(self.guest_dir, f"listen_{port}"))
        except OSError:
            guest.close()
            with self.lock:
                self.refused.append(port)
            host.close()            # the guest's RST
            return
        self.sockets.append(guest)
        with self.lock:
            host_port = self.next_port
            self.next_port = ((self.next_port + 1) & ~(1 << 31)) | (1 << 30)
            record = Relayed("host", port, host_port)
            self.relayed.append(record)
        host.sendall(f"OK {host_port if self.ok_port == 'host' else port}\n".encode())
        self._relay(record, host, guest)

    def _accept_guest(self, listener, port):
        for guest in self._accepting(listener):
            host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                host.connect(f"{self.uds}_{port}")
            except OSError:
                host.close()
                with self.lock:
                    self.refused.append(port)
                guest.close()
                continue
            self.sockets.append(host)
            record = Relayed("guest", None, port)
            with self.lock:
                self.relayed.append(record)
            self._thread(self._relay, record, host, guest)

    def _relay(self, record, host, guest):
        up = threading.Thread(target=pump, args=(host, guest, record.to_guest), daemon=True)
        up.start()
        pump(guest, host, record.to_host)
        up.join()
        host.close()
        guest.close()
        record.done.set()

    def stop(self):
        self.stopping = True
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)
