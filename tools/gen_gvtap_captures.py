#!/usr/bin/env python3
"""Generate the synthetic gvisor-tap-vsock test captures (Podman machine, CRC).

Writes test-captures/synthetic/gvtap_*.pcap (relative to the repository root,
found from this script's location) or into the directory given as the only
argument.  Deterministic: rerunning produces identical bytes.  Standard
library only; the vsock frames come from gen_test_captures.virtio_frame().

gvisor-tap-vsock (github.com/containers/gvisor-tap-vsock): the VM's forwarder
(cmd/vm/main_linux.go) connects to vsock CID 2 port 1024 and writes
"POST /connect HTTP/1.1" (Go's http.Request.Write: Host, User-Agent,
Content-Length: 0); gvproxy takes the connection over without answering.
Both directions then carry Ethernet frames (no FCS), each preceded by its
length, 2 bytes little-endian.  The forwarder writes length and frame in one
write (one RW packet); gvproxy (pkg/tap/switch.go) writes the length, then
the frame (two RW packets).  "POST /tunnel?ip=A&port=P" is answered by the 2
bytes "OK", then raw TCP to A:P is relayed.

The virtual network is gvproxy's default: subnet 192.168.127.0/24, gateway
192.168.127.1 (5a:94:ef:e4:0c:dd, DHCP and DNS), VM 192.168.127.2
(5a:94:ef:e4:0c:ee), the host 192.168.127.254.  The VM is CID 3.

Captures (frame numbers are 1-based; tests/test_gvtap.py relies on them):

gvtap_connect.pcap, VM 3:2283 -> host 2:1024
   1 REQUEST, 2 RESPONSE
   3 POST /connect HTTP/1.1 (the forwarder's request, 85 bytes)
   4 VM: DHCP Discover                      (one frame per RW packet)
   5 host: frame length only, 6 host: DHCP Offer (gvproxy's two writes)
   7 VM: DHCP Request, 8-9 host: DHCP ACK
  10 VM: ARP request who-has 192.168.127.1, 11-12 host: ARP reply
  13 VM: DNS query A host.containers.internal, 14-15 host: the answer
  16 VM: TCP SYN 192.168.127.2:43210 -> 192.168.127.254:80,
  17-18 host: SYN-ACK
  19 VM: two frames in one RW packet: the ACK and "GET /file.bin"
  20-25 host: the HTTP response's first 8 TCP segments (20000-byte body,
        HTTP_BODY below; 1460 bytes per segment), their byte stream cut into
        RW packets of 1000, 2033, 1, 4500, 700 and 3894 bytes: frames cut
        across packets, several frames in a packet, 21 ends with the first
        byte of a frame length and 22 is its second byte alone
  26 VM: ACK
  27-32 host: segments 9-14, cut the same way (last packet 505 bytes); 32
        completes the response
  33 VM: FIN, 34 host: FIN (length and frame in one RW packet), 35 VM: ACK
  36 SHUTDOWN VM -> host, 37 RST host -> VM

gvtap_midstream.pcap: a connection 3:2283 <-> 2:1024 captured from its
  middle (no REQUEST, no POST), decoded with -d vsock.port==1024,gvtap
   1 host: the last 80 bytes of a DNS answer's frame (not in sync)
   2 VM: the last 56 bytes of a DNS query's length and frame (not in sync)
   3 VM: ARP request, 4-5 host: ARP reply (in sync from here)
   6 VM: DNS query, 7-8 host: DNS answer
   9 VM: SYN 192.168.127.2:43220 -> 192.168.127.254:80, 10-11 host: SYN-ACK
  12 VM: ACK and GET /small.txt, 13-14 host: the response (SMALL_BODY)
  15 VM: FIN, 16-17 host: FIN, 18 VM: ACK, 19 SHUTDOWN, 20 RST

gvtap_tunnel.pcap, VM 3:2284 -> host 2:1024
   1 REQUEST, 2 RESPONSE
   3 POST /tunnel?ip=192.168.127.2&port=80 HTTP/1.1
   4 host: "OK"
   5 VM: GET /index.html (raw HTTP relayed to 192.168.127.2:80)
   6 host: the response head and the first 10 bytes of its body
   7 host: the rest of the body (TUNNEL_BODY)
   8 SHUTDOWN, 9 RST

gvtap_after_http.pcap: a plain HTTP connection over vsock (3:4000 -> 2:8080,
  request and response, closed), then a gvisor-tap-vsock connection
  (3:2285 -> 2:1024: POST /connect, DHCP Discover, DHCP Offer): HTTP's
  heuristic, having matched first, must not take the POST.
   1-2 handshake, 3 GET /, 4 200 OK, 5 SHUTDOWN, 6 RST
   7-8 handshake, 9 POST /connect, 10 DHCP Discover, 11-12 DHCP Offer

gvtap_bad.pcap: damaged tunnels (each its own vsock connection)
   3:2290 -> 2:1024
   1-2 handshake, 3 POST /connect
   4 VM: ARP request, a frame of length 0, a frame of length 5, an ARP request
   5 host: a frame length of 1500 and only 100 bytes of it, then
   6 SHUTDOWN host, 7 RST VM (the length runs past the end of the stream)
   3:2291 -> 2:1024: POST /connect followed by text
   8-9 handshake, 10 POST /connect, 11 "this is not an Ethernet frame\\n",
   12 SHUTDOWN, 13 RST
   3:2292 -> 2:1024: POST /connect followed by nothing
   14-15 handshake, 16 POST /connect, 17 SHUTDOWN, 18 RST
   3:2293 -> 2:1024: POST /connect answered with HTTP
   19-20 handshake, 21 POST /connect, 22 host: HTTP/1.1 404 Not Found,
   23 SHUTDOWN, 24 RST
   3:2294 -> 2:1024: /tunnel with a bad port, answered with HTTP 500
   25-26 handshake, 27 POST /tunnel?ip=192.168.127.2&port=x, 28 host: HTTP
   500, 29 SHUTDOWN, 30 RST
   3:2295 -> 2:1024, the capture's end
   31-32 handshake, 33 POST /connect, 34 VM: ARP request and the first byte
   of the next frame's length (the capture ends there)

Usage: gen_gvtap_captures.py [OUTPUT_DIR]
"""

import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_test_captures import (  # noqa: E402  (the path is set just above)
    write_captures, VsockConnection, inet_checksum,
    CID_GUEST, CID_HOST, OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN,
    SHUTDOWN_RCV, SHUTDOWN_SEND, pcap_bytes, virtio_frame)

GVPROXY_PORT = 1024

VM_MAC = bytes.fromhex("5a94efe40cee")
GW_MAC = bytes.fromhex("5a94efe40cdd")
BROADCAST = b"\xff" * 6
VM_IP = bytes([192, 168, 127, 2])
GW_IP = bytes([192, 168, 127, 1])
HOST_IP = bytes([192, 168, 127, 254])
ZERO_IP = bytes(4)
ALL_IP = bytes([255] * 4)

CONNECT_REQUEST = (b"POST /connect HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
                   b"Content-Length: 0\r\n\r\n")


def tunnel_request(query):
    return (b"POST /tunnel?" + query + b" HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
            b"Content-Length: 0\r\n\r\n")


# The body of GET /file.bin in gvtap_connect.pcap: 20000 bytes that no
# mistake in reassembly reproduces.
HTTP_BODY = b"".join(hashlib.sha256(b"gvtap body %d" % i).digest() for i in range(625))
assert len(HTTP_BODY) == 20000
HTTP_REQUEST = (b"GET /file.bin HTTP/1.1\r\nHost: host.containers.internal\r\nUser-Agent: curl/7.88.1\r\n"
                b"Accept: */*\r\n\r\n")
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(HTTP_BODY)) + HTTP_BODY
# gvtap_connect.pcap cuts the host's byte stream of the response into RW
# packets of these sizes, in turn.
RESPONSE_CUTS = [1000, 2033, 1, 4500, 700, 6000, 333]

SMALL_BODY = b"hello from the host\n"
TUNNEL_BODY = b"<html><body>served by the VM, reached through /tunnel</body></html>\n"

# --------------------------------------------------------------------------
# Ethernet, IPv4, UDP, TCP, ARP, DHCP, DNS
# --------------------------------------------------------------------------


def ethernet(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ident=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:] + payload


def udp(src_ip, dst_ip, sport, dport, payload):
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, len(hdr) + len(payload))
    csum = inet_checksum(pseudo + hdr + payload) or 0xFFFF
    return ipv4(src_ip, dst_ip, 17, hdr[:6] + struct.pack("!H", csum) + payload)


TCP_FIN, TCP_SYN, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x08, 0x10


def tcp(src_ip, dst_ip, sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    hdr = hdr[:16] + struct.pack("!H", inet_checksum(pseudo + hdr + payload)) + hdr[18:]
    return ipv4(src_ip, dst_ip, 6, hdr + payload)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def dhcp(op, msg_type, xid, yiaddr=ZERO_IP, options=b""):
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, xid, 0, 0x8000, ZERO_IP, yiaddr,
                        ZERO_IP, ZERO_IP, VM_MAC, b"", b"")
    return bootp + b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + options + b"\xff"


def dhcp_server_options():
    return (bytes([54, 4]) + GW_IP + bytes([51, 4]) + struct.pack("!I", 3600) +
            bytes([1, 4, 255, 255, 255, 0]) + bytes([3, 4]) + GW_IP + bytes([6, 4]) + GW_IP)


def dns_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def dns_query(ident, name):
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", 1, 1)


def dns_answer(ident, name, addr):
    question = dns_name(name) + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + addr
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer


def vm_frame(dst_mac, ethertype, payload):
    return ethernet(dst_mac, VM_MAC, ethertype, payload)


def gw_frame(dst_mac, ethertype, payload):
    return ethernet(dst_mac, GW_MAC, ethertype, payload)


def framed(frame):
    """The tunnel's framing: the length, 2 bytes little-endian, then the frame."""
    return struct.pack("<H", len(frame)) + frame


# --------------------------------------------------------------------------
# The VM's network traffic, as (who, Ethernet frame) in order
# --------------------------------------------------------------------------


class TcpSession:
    """One TCP connection between the VM (client) and a server."""

    def __init__(self, client, server, server_mac, sport, dport, isn_c, isn_s):
        self.ip = {"c": client, "s": server}
        self.port = {"c": sport, "s": dport}
        self.mac = {"c": VM_MAC, "s": server_mac}
        self.seq = {"c": isn_c, "s": isn_s}

    def segment(self, who, flags, payload=b""):
        peer = "s" if who == "c" else "c"
        ack = self.seq[peer] if flags != TCP_SYN else 0
        seg = tcp(self.ip[who], self.ip[peer], self.port[who], self.port[peer], self.seq[who], ack,
                  flags, payload)
        self.seq[who] = (self.seq[who] + len(payload) + (1 if flags & (TCP_SYN | TCP_FIN) else 0)) & 0xFFFFFFFF
        return ethernet(self.mac[peer], self.mac[who], 0x0800, seg)


def dhcp_exchange():
    xid = 0x3903F326
    opts_request = bytes([50, 4]) + VM_IP + bytes([54, 4]) + GW_IP
    return [
        ("c", vm_frame(BROADCAST, 0x0800, udp(ZERO_IP, ALL_IP, 68, 67, dhcp(1, 1, xid)))),
        ("s", gw_frame(VM_MAC, 0x0800, udp(GW_IP, VM_IP, 67, 68, dhcp(2, 2, xid, VM_IP, dhcp_server_options())))),
        ("c", vm_frame(BROADCAST, 0x0800, udp(ZERO_IP, ALL_IP, 68, 67, dhcp(1, 3, xid, options=opts_request)))),
        ("s", gw_frame(VM_MAC, 0x0800, udp(GW_IP, VM_IP, 67, 68, dhcp(2, 5, xid, VM_IP, dhcp_server_options())))),
    ]


def arp_exchange():
    return [
        ("c", vm_frame(BROADCAST, 0x0806, arp(1, VM_MAC, VM_IP, bytes(6), GW_IP))),
        ("s", gw_frame(VM_MAC, 0x0806, arp(2, GW_MAC, GW_IP, VM_MAC, VM_IP))),
    ]


def dns_exchange(ident=0x1a2b):
    name = "host.containers.internal"
    return [
        ("c", vm_frame(GW_MAC, 0x0800, udp(VM_IP, GW_IP, 40001, 53, dns_query(ident, name)))),
        ("s", gw_frame(VM_MAC, 0x0800, udp(GW_IP, VM_IP, 53, 40001, dns_answer(ident, name, HOST_IP)))),
    ]


def http_get(session, request, response, mss=1460, ack_every=8):
    """Handshake, request, response in MSS segments with ACKs, close. The ACK
    and the request are returned as one item (sent in one RW packet)."""
    items = [("c", session.segment("c", TCP_SYN)), ("s", session.segment("s", TCP_SYN | TCP_ACK))]
    items.append(("c", [session.segment("c", TCP_ACK), session.segment("c", TCP_PSH | TCP_ACK, request)]))
    for n, start in enumerate(range(0, len(response), mss), 1):
        items.append(("s", session.segment("s", TCP_PSH | TCP_ACK, response[start:start + mss])))
        if n % ack_every == 0:
            items.append(("c", session.segment("c", TCP_ACK)))
    items.append(("c", session.segment("c", TCP_FIN | TCP_ACK)))
    items.append(("s", session.segment("s", TCP_FIN | TCP_ACK)))
    items.append(("c", session.segment("c", TCP_ACK)))
    return items


# --------------------------------------------------------------------------
# vsock connections
# --------------------------------------------------------------------------


class TunnelConnection(VsockConnection):
    """A vsock connection whose ends write as the tunnel's do."""

    def send_cut(self, who, payload, cuts):
        """payload in RW packets of the sizes in cuts, in turn."""
        start = i = 0
        while start < len(payload):
            self.send(who, payload[start:start + cuts[i % len(cuts)]])
            start += cuts[i % len(cuts)]
            i += 1

    def send_frame(self, who, frame):
        """As the tunnel's ends write: the forwarder in one write, gvproxy the
        length, then the frame."""
        if who == "c":
            self.send("c", framed(frame))
        else:
            self.send("s", framed(frame)[:2])
            self.send("s", frame)

    def close_by_host(self):
        self.close("s")


def tunnel_connection(frames, vm_port, handshake=True):
    conn = TunnelConnection((CID_GUEST, vm_port), (CID_HOST, GVPROXY_PORT), frames)
    if handshake:
        conn.handshake()
    return conn


def send_items(conn, items):
    for who, frame in items:
        if isinstance(frame, list):
            conn.send(who, b"".join(framed(f) for f in frame))
        else:
            conn.send_frame(who, frame)


# --------------------------------------------------------------------------
# The captures
# --------------------------------------------------------------------------


def file_session():
    return TcpSession(VM_IP, HOST_IP, GW_MAC, 43210, 80, 1000, 500000)


def connect_items():
    """gvtap_connect.pcap's frames after the request, as (who, frame or
    [frames sent in one packet])."""
    return (dhcp_exchange() + arp_exchange() + dns_exchange() +
            http_get(file_session(), HTTP_REQUEST, HTTP_RESPONSE))


def connect_capture():
    frames = []
    conn = tunnel_connection(frames, 2283)
    conn.send("c", CONNECT_REQUEST)
    items = connect_items()
    # Up to the HTTP request as the tunnel's ends write; then the response's
    # frames, with the VM's ACKs, cut into RW packets regardless of frames.
    send_items(conn, items[:11])
    host_stream = b""
    for who, frame in items[11:]:
        if who == "s":
            host_stream += framed(frame)
            continue
        if host_stream:
            conn.send_cut("s", host_stream, RESPONSE_CUTS)
            host_stream = b""
        conn.send_frame("c", frame)
    if host_stream:
        conn.send_cut("s", host_stream, RESPONSE_CUTS)
    conn.close()
    return frames


SMALL_GET = b"GET /small.txt HTTP/1.1\r\nHost: host.containers.internal\r\n\r\n"
SMALL_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(SMALL_BODY)
                  + SMALL_BODY)


def midstream_items():
    """gvtap_midstream.pcap's frames once in sync (from frame 3 on)."""
    session = TcpSession(VM_IP, HOST_IP, GW_MAC, 43220, 80, 7000, 900000)
    return arp_exchange() + dns_exchange(0x5555) + http_get(session, SMALL_GET, SMALL_RESPONSE)


def midstream_capture():
    frames = []
    conn = tunnel_connection(frames, 2283, handshake=False)
    # The capture starts inside a frame in each direction: the end of a DNS
    # answer's frame (its length was written before), and the end of a
    # length and frame the forwarder wrote.
    conn.send("s", dns_exchange(0x7777)[1][1][20:])
    conn.send("c", framed(dns_exchange(0x7777)[0][1])[30:])
    send_items(conn, midstream_items())
    conn.close()
    return frames


def tunnel_capture():
    frames = []
    conn = tunnel_connection(frames, 2284)
    conn.send("c", tunnel_request(b"ip=192.168.127.2&port=80"))
    conn.send("s", b"OK")
    conn.send("c", b"GET /index.html HTTP/1.1\r\nHost: 192.168.127.2\r\nUser-Agent: curl/7.88.1\r\n\r\n")
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(TUNNEL_BODY)
                + TUNNEL_BODY)
    head_end = response.index(b"\r\n\r\n") + 4 + 10
    conn.send("s", response[:head_end])
    conn.send("s", response[head_end:])
    conn.close()
    return frames


def after_http_capture():
    frames = []
    http = TunnelConnection((CID_GUEST, 4000), (CID_HOST, 8080), frames)
    http.handshake()
    http.send("c", b"GET / HTTP/1.1\r\nHost: vm.example\r\n\r\n")
    http.send("s", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n")
    http.close()
    conn = tunnel_connection(frames, 2285)
    conn.send("c", CONNECT_REQUEST)
    send_items(conn, dhcp_exchange()[:2])
    return frames


def bad_capture():
    frames = []
    arp_request = arp_exchange()[0][1]

    conn = tunnel_connection(frames, 2290)
    conn.send("c", CONNECT_REQUEST)
    conn.send("c", framed(arp_request) + b"\x00\x00" + framed(b"short") + framed(arp_request))
    conn.send("s", struct.pack("<H", 1500) + dhcp_exchange()[1][1][:100])
    conn.close_by_host()

    conn = tunnel_connection(frames, 2291)
    conn.send("c", CONNECT_REQUEST)
    conn.send("c", b"this is not an Ethernet frame\n")
    conn.close()

    conn = tunnel_connection(frames, 2292)
    conn.send("c", CONNECT_REQUEST)
    conn.close()

    conn = tunnel_connection(frames, 2293)
    conn.send("c", CONNECT_REQUEST)
    conn.send("s", b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"X-Content-Type-Options: nosniff\r\nContent-Length: 19\r\n\r\n404 page not found\n")
    conn.close()

    conn = tunnel_connection(frames, 2294)
    conn.send("c", tunnel_request(b"ip=192.168.127.2&port=x"))
    message = b'strconv.ParseUint: parsing "x": invalid syntax\n'
    conn.send("s", b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n" % len(message) + message)
    conn.close()

    conn = tunnel_connection(frames, 2295)
    conn.send("c", CONNECT_REQUEST)
    conn.send("c", framed(arp_request) + framed(arp_request)[:1])
    return frames


def captures():
    """file name -> pcap bytes."""
    vsock = {
        "gvtap_connect.pcap": connect_capture(),
        "gvtap_midstream.pcap": midstream_capture(),
        "gvtap_tunnel.pcap": tunnel_capture(),
        "gvtap_after_http.pcap": after_http_capture(),
        "gvtap_bad.pcap": bad_capture(),
    }
    return {name: pcap_bytes(frames) for name, frames in vsock.items()}


def main(argv):
    return write_captures(argv, captures)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
