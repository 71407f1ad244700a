#!/usr/bin/env python3
"""Generate the synthetic AF_VSOCK test captures used by wireshark-vsock.

Writes classic pcap files (LINKTYPE_VSOCK = 271) into test-captures/synthetic/
(relative to the repository root, found from this script's location) or into
the directory given as the only argument, plus a README.md describing every
packet.  The output is deterministic: rerunning produces identical bytes.

Frame layout (see shared/reference/vsock-format.md):

    vsockmon header, 32 bytes little-endian
        src_cid u64, dst_cid u64, src_port u32, dst_port u32,
        op u16, transport u16, len u16 (transport header length), reserved u16
    transport header, `len` bytes; for transport 2 (virtio) 44 bytes packed LE
        src_cid u64, dst_cid u64, src_port u32, dst_port u32, len u32,
        type u16, op u16, flags u32, buf_alloc u32, fwd_cnt u32
    payload

Packet numbers in tests and in the README are 1-based, in the order the
packets are listed below.  Keep that order when editing.

Standard library only.  Usage: gen_test_captures.py [OUTPUT_DIR]
"""

import os
import struct
import sys

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

LINKTYPE_VSOCK = 271
SNAPLEN = 262144
START_TIME_US = 1_700_000_000 * 1_000_000   # first packet: 1700000000.000000
STEP_US = 1_000                              # +1 ms per packet

# vsockmon op
MON_OP_UNKNOWN = 0
MON_OP_CONNECT = 1
MON_OP_DISCONNECT = 2
MON_OP_CONTROL = 3
MON_OP_PAYLOAD = 4

# vsockmon transport
TRANS_UNKNOWN = 0
TRANS_NO_INFO = 1
TRANS_VIRTIO = 2

# virtio type
TYPE_STREAM = 1
TYPE_SEQPACKET = 2
TYPE_DGRAM = 3

# virtio op
OP_INVALID = 0
OP_REQUEST = 1
OP_RESPONSE = 2
OP_RST = 3
OP_SHUTDOWN = 4
OP_RW = 5
OP_CREDIT_UPDATE = 6
OP_CREDIT_REQUEST = 7

# virtio flags
SHUTDOWN_RCV = 1
SHUTDOWN_SEND = 2
SEQ_EOM = 1
SEQ_EOR = 2

# Well-known CIDs
CID_HYPERVISOR = 0
CID_LOCAL = 1
CID_HOST = 2
CID_ANY = 0xFFFFFFFF
CID_GUEST = 3           # the first CID a guest gets

VSOCKMON_HDR_LEN = 32
VIRTIO_HDR_LEN = 44
DEFAULT_BUF_ALLOC = 262144

# virtio op -> the vsockmon op the kernel writes for it
MON_OP_FOR_VIRTIO_OP = {
    OP_REQUEST: MON_OP_CONNECT,
    OP_RESPONSE: MON_OP_CONNECT,
    OP_RST: MON_OP_DISCONNECT,
    OP_SHUTDOWN: MON_OP_DISCONNECT,
    OP_RW: MON_OP_PAYLOAD,
    OP_CREDIT_UPDATE: MON_OP_CONTROL,
    OP_CREDIT_REQUEST: MON_OP_CONTROL,
}

OP_NAMES = {
    OP_INVALID: "INVALID", OP_REQUEST: "REQUEST", OP_RESPONSE: "RESPONSE",
    OP_RST: "RST", OP_SHUTDOWN: "SHUTDOWN", OP_RW: "RW",
    OP_CREDIT_UPDATE: "CREDIT_UPDATE", OP_CREDIT_REQUEST: "CREDIT_REQUEST",
}
TYPE_NAMES = {TYPE_STREAM: "stream", TYPE_SEQPACKET: "seqpacket",
              TYPE_DGRAM: "dgram"}

# --------------------------------------------------------------------------
# Packet builder
# --------------------------------------------------------------------------


def vsockmon_header(src_cid, dst_cid, src_port, dst_port, op, trans,
                    trans_len, reserved=0):
    """The 32-byte vsockmon header (struct af_vsockmon_hdr)."""
    return struct.pack("<QQIIHHHH", src_cid, dst_cid, src_port, dst_port,
                       op, trans, trans_len, reserved)


def virtio_header(src_cid, dst_cid, src_port, dst_port, length, type_, op,
                  flags, buf_alloc, fwd_cnt):
    """The 44-byte packed virtio header (struct virtio_vsock_hdr)."""
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port,
                       length, type_, op, flags, buf_alloc, fwd_cnt)


def virtio_frame(src, dst, op, *, type_=TYPE_STREAM, flags=0,
                 buf_alloc=DEFAULT_BUF_ALLOC, fwd_cnt=0, payload=b"",
                 length=None,
                 mon_src_cid=None, mon_dst_cid=None,
                 mon_src_port=None, mon_dst_port=None, mon_op=None,
                 trans=TRANS_VIRTIO, trans_len=None, reserved=0,
                 trans_extra=b"", extra=b"", truncate=None):
    """A vsockmon frame carrying a virtio header, built like the kernel does.

    src, dst: (cid, port) tuples, written into the virtio header.

    Derived by default, each overridable by keyword (for the bad cases):
      length       virtio len          = len(payload)
      mon_*_cid/port vsockmon addresses = copied from the virtio header
      mon_op       vsockmon op         = mapped from the virtio op
      trans        vsockmon transport  = 2 (virtio)
      trans_len    vsockmon len        = 44 + len(trans_extra)
      reserved     vsockmon reserved   = 0
    Raw damage:
      trans_extra  bytes placed after the virtio header, before the payload
      extra        bytes appended after the payload
      truncate     keep only the first `truncate` bytes of the whole frame
    """
    src_cid, src_port = src
    dst_cid, dst_port = dst
    if length is None:
        length = len(payload)
    if mon_op is None:
        mon_op = MON_OP_FOR_VIRTIO_OP.get(op, MON_OP_UNKNOWN)
    if trans_len is None:
        trans_len = VIRTIO_HDR_LEN + len(trans_extra)
    mon = vsockmon_header(
        src_cid if mon_src_cid is None else mon_src_cid,
        dst_cid if mon_dst_cid is None else mon_dst_cid,
        src_port if mon_src_port is None else mon_src_port,
        dst_port if mon_dst_port is None else mon_dst_port,
        mon_op, trans, trans_len, reserved)
    virtio = virtio_header(src_cid, dst_cid, src_port, dst_port, length,
                           type_, op, flags, buf_alloc, fwd_cnt)
    frame = mon + virtio + trans_extra + payload + extra
    if truncate is not None:
        frame = frame[:truncate]
    return frame


class VsockConnection:
    """Frames of one stream connection, appended to frames (a new list when not
    given); fwd_cnt follows what each side read. "c" is the client, "s" the server."""

    RW_MAX = 65536     # Linux puts at most 64 KiB in one RW packet

    def __init__(self, client, server, frames=None):
        self.side = {"c": client, "s": server}
        self.consumed = {"c": 0, "s": 0}
        self.frames = [] if frames is None else frames

    def peer(self, who):
        return "s" if who == "c" else "c"

    def handshake(self):
        self.frames.append(virtio_frame(self.side["c"], self.side["s"], OP_REQUEST))
        self.frames.append(virtio_frame(self.side["s"], self.side["c"], OP_RESPONSE))

    def send(self, who, payload):
        for start in range(0, len(payload), self.RW_MAX):
            chunk = payload[start:start + self.RW_MAX]
            self.frames.append(virtio_frame(self.side[who], self.side[self.peer(who)], OP_RW,
                                            payload=chunk, fwd_cnt=self.consumed[who]))
            self.consumed[self.peer(who)] += len(chunk)

    def close(self, closer="c"):
        """SHUTDOWN (rcv,send) from closer, the RST that answers it."""
        other = self.peer(closer)
        self.frames.append(virtio_frame(self.side[closer], self.side[other], OP_SHUTDOWN,
                                        flags=SHUTDOWN_RCV | SHUTDOWN_SEND, fwd_cnt=self.consumed[closer]))
        self.frames.append(virtio_frame(self.side[other], self.side[closer], OP_RST,
                                        fwd_cnt=self.consumed[other]))


def mon_frame(src, dst, op, trans, *, trans_hdr=b"", trans_len=None,
              reserved=0, payload=b"", truncate=None):
    """A vsockmon frame with an arbitrary (non-virtio) transport header.

    trans_hdr is written verbatim after the vsockmon header; trans_len
    defaults to its length.
    """
    if trans_len is None:
        trans_len = len(trans_hdr)
    frame = vsockmon_header(src[0], dst[0], src[1], dst[1], op, trans,
                            trans_len, reserved) + trans_hdr + payload
    if truncate is not None:
        frame = frame[:truncate]
    return frame


# --------------------------------------------------------------------------
# pcap writer
# --------------------------------------------------------------------------


def pcap_bytes(frames):
    """Classic pcap, microsecond, v2.4, LINKTYPE_VSOCK, fixed timestamps.

    Each record's original length equals its captured length: a truncated
    test frame is a short packet, not a snaplen cut.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN,
                       LINKTYPE_VSOCK)]
    for i, frame in enumerate(frames):
        t = START_TIME_US + i * STEP_US
        assert len(frame) <= SNAPLEN
        out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000,
                               len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


# --------------------------------------------------------------------------
# The captures.  Each capture is a list of (description, frame).
# --------------------------------------------------------------------------

GUEST = (3, 50000)
HOST = (CID_HOST, 1234)


def good():
    pkts = []

    def add(desc, frame):
        pkts.append((desc, frame))

    # Stream connection guest 3:50000 <-> host 2:1234.  fwd_cnt is kept
    # consistent: the host has consumed 6 bytes ("hello\n") from packet 4 on,
    # the guest 7 bytes ("world!\n") from packet 7 on.
    g, h = GUEST, HOST
    add("REQUEST stream 3:50000 -> 2:1234, fwd_cnt 0",
        virtio_frame(g, h, OP_REQUEST))
    add("RESPONSE stream 2:1234 -> 3:50000",
        virtio_frame(h, g, OP_RESPONSE))
    add('RW stream 3 -> 2, payload "hello\\n" (len 6)',
        virtio_frame(g, h, OP_RW, payload=b"hello\n"))
    add("CREDIT_UPDATE 2 -> 3, fwd_cnt 6",
        virtio_frame(h, g, OP_CREDIT_UPDATE, fwd_cnt=6))
    add("CREDIT_REQUEST 3 -> 2, fwd_cnt 0",
        virtio_frame(g, h, OP_CREDIT_REQUEST))
    add('RW stream 2 -> 3, payload "world!\\n" (len 7), fwd_cnt 6',
        virtio_frame(h, g, OP_RW, payload=b"world!\n", fwd_cnt=6))
    add("SHUTDOWN 3 -> 2, flags 1 (RCV), fwd_cnt 7",
        virtio_frame(g, h, OP_SHUTDOWN, flags=SHUTDOWN_RCV, fwd_cnt=7))
    add("SHUTDOWN 3 -> 2, flags 2 (SEND), fwd_cnt 7",
        virtio_frame(g, h, OP_SHUTDOWN, flags=SHUTDOWN_SEND, fwd_cnt=7))
    add("SHUTDOWN 2 -> 3, flags 3 (RCV|SEND), fwd_cnt 6",
        virtio_frame(h, g, OP_SHUTDOWN, flags=SHUTDOWN_RCV | SHUTDOWN_SEND,
                     fwd_cnt=6))
    add("RST 3 -> 2, flags 0, fwd_cnt 7",
        virtio_frame(g, h, OP_RST, fwd_cnt=7))

    # Seqpacket connection guest 3:50001 <-> host 2:5000.  Host fwd_cnt
    # counts the 160 message bytes once received.
    g, h = (3, 50001), (CID_HOST, 5000)
    sp = TYPE_SEQPACKET
    add("REQUEST seqpacket 3:50001 -> 2:5000",
        virtio_frame(g, h, OP_REQUEST, type_=sp))
    add("RESPONSE seqpacket 2:5000 -> 3:50001",
        virtio_frame(h, g, OP_RESPONSE, type_=sp))
    add('RW seqpacket 3 -> 2, flags 0, 100 x "A"',
        virtio_frame(g, h, OP_RW, type_=sp, payload=b"A" * 100))
    add('RW seqpacket 3 -> 2, flags 1 (EOM), 50 x "B"',
        virtio_frame(g, h, OP_RW, type_=sp, flags=SEQ_EOM,
                     payload=b"B" * 50))
    add('RW seqpacket 3 -> 2, flags 3 (EOM|EOR), 10 x "C"',
        virtio_frame(g, h, OP_RW, type_=sp, flags=SEQ_EOM | SEQ_EOR,
                     payload=b"C" * 10))
    add("SHUTDOWN seqpacket 3 -> 2, flags 3 (RCV|SEND)",
        virtio_frame(g, h, OP_SHUTDOWN, type_=sp,
                     flags=SHUTDOWN_RCV | SHUTDOWN_SEND))
    add("RST seqpacket 2 -> 3, fwd_cnt 160",
        virtio_frame(h, g, OP_RST, type_=sp, fwd_cnt=160))

    # Datagram (type 3, not in Linux; libkrun uses it).
    add('RW dgram 3:50002 -> 2:6000, flags 0, payload "dgram"',
        virtio_frame((3, 50002), (CID_HOST, 6000), OP_RW, type_=TYPE_DGRAM,
                     payload=b"dgram"))

    # Well-known CIDs.
    add("REQUEST stream 1:40000 -> 1:40001 (loopback CID 1 both ends)",
        virtio_frame((CID_LOCAL, 40000), (CID_LOCAL, 40001), OP_REQUEST))
    add("REQUEST stream 0:100 -> 0xFFFFFFFF:200 (CID 0 hypervisor, CID any)",
        virtio_frame((CID_HYPERVISOR, 100), (CID_ANY, 200), OP_REQUEST))

    # vsockmon headers without a virtio header.
    g, h = (3, 50003), (CID_HOST, 1234)
    add("vsockmon only: transport 1 (no info), len 0, op 1 (connect), "
        "3:50003 -> 2:1234, nothing after the header",
        mon_frame(g, h, MON_OP_CONNECT, TRANS_NO_INFO))
    add("vsockmon transport 1 (no info), len 8, op 2 (disconnect), "
        "3:50003 -> 2:1234, then 8 bytes 00..07, no payload",
        mon_frame(g, h, MON_OP_DISCONNECT, TRANS_NO_INFO,
                  trans_hdr=bytes(range(8))))
    add("vsockmon transport 0 (unknown), len 0, op 0 (unknown), "
        "3:50003 -> 2:1234, nothing after the header",
        mon_frame(g, h, MON_OP_UNKNOWN, TRANS_UNKNOWN))
    return pkts


HTTP_REQUEST = (b"GET /index.html HTTP/1.1\r\nHost: vm.example\r\n"
                b"User-Agent: vsock-test\r\n\r\n")
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                 b"Content-Type: text/plain\r\n\r\nhello")


def http_request():
    g, h = (3, 49152), (CID_HOST, 8080)
    req, resp = HTTP_REQUEST, HTTP_RESPONSE
    return [
        ("REQUEST stream 3:49152 -> 2:8080",
         virtio_frame(g, h, OP_REQUEST)),
        ("RESPONSE 2:8080 -> 3:49152",
         virtio_frame(h, g, OP_RESPONSE)),
        ("RW 3 -> 2, HTTP GET /index.html request (%d bytes)" % len(req),
         virtio_frame(g, h, OP_RW, payload=req)),
        ("RW 2 -> 3, HTTP 200 OK response, body \"hello\" (%d bytes), "
         "fwd_cnt %d" % (len(resp), len(req)),
         virtio_frame(h, g, OP_RW, payload=resp, fwd_cnt=len(req))),
        ("SHUTDOWN 3 -> 2, flags 3 (RCV|SEND), fwd_cnt %d" % len(resp),
         virtio_frame(g, h, OP_SHUTDOWN, flags=SHUTDOWN_RCV | SHUTDOWN_SEND,
                      fwd_cnt=len(resp))),
        ("RST 2 -> 3, fwd_cnt %d" % len(req),
         virtio_frame(h, g, OP_RST, fwd_cnt=len(req))),
    ]


def rw(**kw):
    """The default bad-case base: RW stream 3:50000 -> 2:1234, "data"."""
    kw.setdefault("payload", b"data")
    return virtio_frame(GUEST, HOST, OP_RW, **kw)


# name -> (packet description, what is wrong, frame)
BAD_CASES = [
    ("short_vsockmon",
     "first 20 bytes of the vsockmon header of a RW packet (frame is 20 bytes)",
     "frame shorter than the 32-byte vsockmon header",
     rw(truncate=20)),
    ("trans_len_past_end",
     "vsockmon transport 2, len 44, then only the first 20 bytes of the "
     "virtio RW header (frame is 52 bytes)",
     "transport header length runs past the end of the frame",
     rw(truncate=VSOCKMON_HDR_LEN + 20)),
    ("virtio_len_short",
     "vsockmon len 40, then the first 40 bytes of a virtio REQUEST header "
     "(buf_alloc present, fwd_cnt missing), no payload",
     "transport 2 with len 40 < 44: virtio header incomplete",
     virtio_frame(GUEST, HOST, OP_REQUEST, trans_len=40,
                  truncate=VSOCKMON_HDR_LEN + 40)),
    ("virtio_len_long",
     "vsockmon len 48: full 44-byte virtio RW header (len 4), 4 bytes "
     "EE EE EE EE, then payload \"data\"",
     "transport 2 with len 48 > 44: 4 unexplained transport header bytes",
     rw(trans_extra=b"\xee" * 4)),
    ("unknown_trans_with_len",
     "vsockmon transport 7, len 8, op 4 (payload), 8 bytes AA, then "
     "payload \"data\"",
     "unknown transport 7 (its 8-byte header must be skipped)",
     mon_frame(GUEST, HOST, MON_OP_PAYLOAD, 7, trans_hdr=b"\xaa" * 8,
               payload=b"data")),
    ("unknown_trans",
     "vsockmon transport 5, len 0, op 1 (connect), nothing after the header",
     "unknown transport 5",
     mon_frame(GUEST, HOST, MON_OP_CONNECT, 5)),
    ("payload_longer",
     "RW, virtio len 4, payload \"dataEXTRA!\" (10 bytes)",
     "payload 6 bytes longer than virtio len (Linux 6.1 vhost split bug)",
     rw(length=4, payload=b"dataEXTRA!")),
    ("payload_shorter",
     "RW, virtio len 10, payload \"data\" (4 bytes)",
     "payload 6 bytes shorter than virtio len",
     rw(length=10)),
    ("cid_mismatch",
     "RW, vsockmon src_cid 4, virtio src_cid 3",
     "source CID differs between vsockmon and virtio headers",
     rw(mon_src_cid=4)),
    ("port_mismatch",
     "RW, vsockmon dst_port 1235, virtio dst_port 1234",
     "destination port differs between vsockmon and virtio headers",
     rw(mon_dst_port=1235)),
    ("op_mismatch",
     "vsockmon op 1 (connect), virtio op 5 (RW), payload \"data\"",
     "vsockmon op does not match the virtio op (RW should be 4 payload)",
     rw(mon_op=MON_OP_CONNECT)),
    ("unknown_vsockmon_op",
     "vsockmon op 9, virtio RW, payload \"data\"",
     "unknown vsockmon op 9",
     rw(mon_op=9)),
    ("unknown_virtio_op",
     "virtio op 9, vsockmon op 0 (unknown), len 0, no payload",
     "unknown virtio op 9",
     virtio_frame(GUEST, HOST, 9)),
    ("invalid_virtio_op",
     "virtio op 0 (INVALID), vsockmon op 0 (unknown), len 0, no payload",
     "virtio op 0 INVALID is never valid on the wire",
     virtio_frame(GUEST, HOST, OP_INVALID)),
    ("unknown_virtio_type",
     "RW, virtio type 7, payload \"data\"",
     "unknown virtio type 7",
     rw(type_=7)),
    ("reserved_nonzero",
     "RW, vsockmon reserved 0x1234 (bytes 34 12)",
     "vsockmon reserved field not zero",
     rw(reserved=0x1234)),
    ("payload_on_non_rw",
     "REQUEST (vsockmon op 1), virtio len 4, payload \"data\"",
     "payload on an op other than RW",
     virtio_frame(GUEST, HOST, OP_REQUEST, payload=b"data")),
    ("rw_len_zero",
     "RW, virtio len 0, no payload",
     "zero-length RW (Linux never sends one)",
     rw(payload=b"")),
    ("cid_upper_bits",
     "RW, src_cid 0x100000003 in both vsockmon and virtio headers",
     "upper 32 bits of the virtio src_cid are reserved and must be zero",
     virtio_frame((0x100000003, 50000), HOST, OP_RW, payload=b"data")),
    ("shutdown_no_flags",
     "SHUTDOWN 3 -> 2, flags 0",
     "SHUTDOWN without RCV or SEND bit",
     virtio_frame(GUEST, HOST, OP_SHUTDOWN)),
    ("flags_unknown_bits",
     "RW stream, flags 0x10, payload \"data\"",
     "undefined flag bit 4 set",
     rw(flags=0x10)),
]


# --------------------------------------------------------------------------
# Connection analysis: one capture per rule (guest 3 -> host 2 unless said)
# --------------------------------------------------------------------------


def analysis_cases():
    """file name -> list of (packet description, frame)."""
    g, h = (CID_GUEST, 40000), (CID_HOST, 1234)
    small = 4096  # the host's receive buffer in the credit case
    cases = {}

    cases["analysis_refused.pcap"] = [
        ("REQUEST 3:40000 -> 2:1234", virtio_frame(g, h, OP_REQUEST)),
        ("RST 2 -> 3, buf_alloc 0, fwd_cnt 0 (no listener)",
         virtio_frame(h, g, OP_RST, buf_alloc=0)),
    ]
    cases["analysis_reset.pcap"] = [
        ("REQUEST", virtio_frame(g, h, OP_REQUEST)),
        ("RESPONSE", virtio_frame(h, g, OP_RESPONSE)),
        ("RW 3 -> 2, 1000 bytes", virtio_frame(g, h, OP_RW, payload=b"r" * 1000)),
        ("RW 2 -> 3, 500 bytes, fwd_cnt 1000",
         virtio_frame(h, g, OP_RW, payload=b"s" * 500, fwd_cnt=1000)),
        ("RST 2 -> 3 in the middle of the transfer (no SHUTDOWN)",
         virtio_frame(h, g, OP_RST, fwd_cnt=1000)),
        ("RW 3 -> 2, 10 bytes after the RST", virtio_frame(g, h, OP_RW, payload=b"t" * 10, fwd_cnt=500)),
    ]
    cases["analysis_halfclose.pcap"] = [
        ("REQUEST", virtio_frame(g, h, OP_REQUEST)),
        ("RESPONSE", virtio_frame(h, g, OP_RESPONSE)),
        ("RW 3 -> 2 \"req\"", virtio_frame(g, h, OP_RW, payload=b"req")),
        ("SHUTDOWN 3 -> 2 flags 2 (SEND): half-close",
         virtio_frame(g, h, OP_SHUTDOWN, flags=SHUTDOWN_SEND)),
        ("RW 2 -> 3, 100 bytes, fwd_cnt 3: data still flows the other way",
         virtio_frame(h, g, OP_RW, payload=b"a" * 100, fwd_cnt=3)),
        ("RW 2 -> 3, 50 bytes, fwd_cnt 3", virtio_frame(h, g, OP_RW, payload=b"b" * 50, fwd_cnt=3)),
        ("RW 3 -> 2, 5 bytes, fwd_cnt 150: data after its own SHUTDOWN (SEND)",
         virtio_frame(g, h, OP_RW, payload=b"c" * 5, fwd_cnt=150)),
        ("SHUTDOWN 2 -> 3 flags 3", virtio_frame(h, g, OP_SHUTDOWN, flags=3, fwd_cnt=8)),
        ("RST 3 -> 2 answering the SHUTDOWN", virtio_frame(g, h, OP_RST, fwd_cnt=150)),
    ]
    cases["analysis_credit.pcap"] = [
        ("REQUEST", virtio_frame(g, h, OP_REQUEST)),
        ("RESPONSE, host buf_alloc 4096", virtio_frame(h, g, OP_RESPONSE, buf_alloc=small)),
        ("RW 3 -> 2, 2048 bytes (credit 4096)", virtio_frame(g, h, OP_RW, payload=b"d" * 2048)),
        ("RW 3 -> 2, 2048 bytes (credit 2048): credit exhausted",
         virtio_frame(g, h, OP_RW, payload=b"e" * 2048)),
        ("CREDIT_UPDATE 2 -> 3, fwd_cnt 2048: credit reopened",
         virtio_frame(h, g, OP_CREDIT_UPDATE, buf_alloc=small, fwd_cnt=2048)),
        ("RW 3 -> 2, 1024 bytes (credit 2048)", virtio_frame(g, h, OP_RW, payload=b"f" * 1024)),
        ("RW 3 -> 2, 2048 bytes (credit 1024): credit violation",
         virtio_frame(g, h, OP_RW, payload=b"g" * 2048)),
        ("CREDIT_REQUEST 3 -> 2", virtio_frame(g, h, OP_CREDIT_REQUEST)),
        ("CREDIT_UPDATE 2 -> 3, fwd_cnt 5120: answers the request, credit reopened",
         virtio_frame(h, g, OP_CREDIT_UPDATE, buf_alloc=small, fwd_cnt=5120)),
        ("CREDIT_UPDATE 2 -> 3, fwd_cnt 4000: fwd_cnt went backwards",
         virtio_frame(h, g, OP_CREDIT_UPDATE, buf_alloc=small, fwd_cnt=4000)),
    ]
    reuse = (CID_GUEST, 5000)
    cases["analysis_reuse.pcap"] = [
        ("REQUEST 3:5000 -> 2:1234", virtio_frame(reuse, h, OP_REQUEST)),
        ("RESPONSE", virtio_frame(h, reuse, OP_RESPONSE)),
        ("SHUTDOWN 3 -> 2 flags 3", virtio_frame(reuse, h, OP_SHUTDOWN, flags=3)),
        ("RST 2 -> 3", virtio_frame(h, reuse, OP_RST)),
        ("REQUEST 3:5000 -> 2:1234 again: a new stream", virtio_frame(reuse, h, OP_REQUEST)),
        ("RESPONSE", virtio_frame(h, reuse, OP_RESPONSE)),
        ("RW 3 -> 2 \"x\"", virtio_frame(reuse, h, OP_RW, payload=b"x")),
    ]
    cases["analysis_midstream.pcap"] = [
        ("RW 3 -> 2, 100 bytes, fwd_cnt 5000: the capture starts mid-connection",
         virtio_frame(g, h, OP_RW, payload=b"m" * 100, fwd_cnt=5000)),
        ("CREDIT_UPDATE 2 -> 3, buf_alloc 65536, fwd_cnt 9000",
         virtio_frame(h, g, OP_CREDIT_UPDATE, buf_alloc=65536, fwd_cnt=9000)),
        ("RW 3 -> 2, 1000 bytes, fwd_cnt 5000", virtio_frame(g, h, OP_RW, payload=b"n" * 1000, fwd_cnt=5000)),
        ("RW 2 -> 3, 10 bytes, buf_alloc 65536, fwd_cnt 9000",
         virtio_frame(h, g, OP_RW, payload=b"o" * 10, buf_alloc=65536, fwd_cnt=9000)),
    ]
    cases["analysis_early_data.pcap"] = [
        ("REQUEST", virtio_frame(g, h, OP_REQUEST)),
        ("RW 3 -> 2 before the RESPONSE", virtio_frame(g, h, OP_RW, payload=b"early")),
        ("RESPONSE", virtio_frame(h, g, OP_RESPONSE, fwd_cnt=5)),
        ("REQUEST 3:40001 -> 2:1234, never answered", virtio_frame((CID_GUEST, 40001), h, OP_REQUEST)),
    ]
    seq = dict(type_=TYPE_SEQPACKET)
    cases["analysis_seqpacket_cut.pcap"] = [
        ("REQUEST seqpacket", virtio_frame(g, h, OP_REQUEST, **seq)),
        ("RESPONSE seqpacket", virtio_frame(h, g, OP_RESPONSE, **seq)),
        ("RW 3 -> 2, 100 bytes, no EOM", virtio_frame(g, h, OP_RW, payload=b"p" * 100, **seq)),
        ("RW 3 -> 2, 50 bytes, EOM", virtio_frame(g, h, OP_RW, payload=b"q" * 50, flags=SEQ_EOM, **seq)),
        ("RW 3 -> 2, 70 bytes, no EOM: a message begins", virtio_frame(g, h, OP_RW, payload=b"u" * 70, **seq)),
        ("RST 2 -> 3 before its EOM: the message is lost", virtio_frame(h, g, OP_RST, fwd_cnt=150, **seq)),
    ]
    cases["analysis_many_streams.pcap"] = many_streams(1500)
    cases["handoff_late_protocol.pcap"] = late_protocol()
    cases["reassembly_carry_over.pcap"] = carry_over()
    cases["handoff_http2.pcap"] = http2_prior_knowledge()
    cases["analysis_loopback_cid2.pcap"] = loopback_to_cid2()
    cases["notrans_http.pcap"] = no_transport_info_http()
    return cases


def loopback_to_cid2():
    """A connection to CID 2 carried by vsock_loopback (a host with vhost_vsock
    and no guest transport): the REQUEST and the client's data go 1:x -> 2:P,
    but vsock_loopback stamps its own CID 1 on the answers, 1:P -> 1:x."""
    client, server, answer = (CID_LOCAL, 3000000001), (CID_HOST, 5200), (CID_LOCAL, 5200)
    return [
        ("REQUEST 1:3000000001 -> 2:5200", virtio_frame(client, server, OP_REQUEST)),
        ("RESPONSE 1:5200 -> 1:3000000001 (CID 1, not 2)", virtio_frame(answer, client, OP_RESPONSE)),
        ("RW 1 -> 2, 6 bytes \"hello\\n\"", virtio_frame(client, server, OP_RW, payload=b"hello\n")),
        ("RW 1:5200 -> 1, 4 bytes \"hi\\r\\n\", fwd_cnt 6",
         virtio_frame(answer, client, OP_RW, payload=b"hi\r\n", fwd_cnt=6)),
        ("SHUTDOWN 1 -> 2 flags 3", virtio_frame(client, server, OP_SHUTDOWN, flags=3, fwd_cnt=4)),
        ("RST 1:5200 -> 1 answering the SHUTDOWN", virtio_frame(answer, client, OP_RST, fwd_cnt=6)),
    ]


def no_transport_info_http():
    """A connection captured without a transport header (vsockmon transport 1,
    "no info", length 0), as a capture of hybrid vsock writes one: CONNECT and
    its answer, an HTTP request and a response split over three payloads, and
    each side's DISCONNECT. The host (2) connects to the guest (3)."""
    host, guest = (CID_HOST, 1073741824), (CID_GUEST, 8080)
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello, vsock"
    frames = [
        ("CONNECT 2:1073741824 -> 3:8080", mon_frame(host, guest, MON_OP_CONNECT, TRANS_NO_INFO)),
        ("CONNECT 3:8080 -> 2 (the answer)", mon_frame(guest, host, MON_OP_CONNECT, TRANS_NO_INFO)),
        ("PAYLOAD 2 -> 3, an HTTP GET",
         mon_frame(host, guest, MON_OP_PAYLOAD, TRANS_NO_INFO,
                   payload=b"GET /hello HTTP/1.1\r\nHost: guest\r\n\r\n")),
    ]
    for i, part in enumerate((response[:20], response[20:45], response[45:]), 1):
        frames.append(("PAYLOAD 3 -> 2, the HTTP response part %d of 3" % i,
                       mon_frame(guest, host, MON_OP_PAYLOAD, TRANS_NO_INFO, payload=part)))
    frames += [
        ("DISCONNECT 2 -> 3", mon_frame(host, guest, MON_OP_DISCONNECT, TRANS_NO_INFO)),
        ("DISCONNECT 3 -> 2", mon_frame(guest, host, MON_OP_DISCONNECT, TRANS_NO_INFO)),
    ]
    return frames


def carry_over():
    """HTTP headers split so that the segment completing one response also
    starts the next: the reassembled data ends inside a second PDU."""
    client, server = (CID_GUEST, 42000), (CID_HOST, 8080)
    segments = [b"HTTP/1.1 200 OK\r\nConte",
                b"nt-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\nCon",
                b"tent-Length: 4\r\n\r\nnope"]
    frames = [
        ("REQUEST 3:42000 -> 2:8080", virtio_frame(client, server, OP_REQUEST)),
        ("RESPONSE", virtio_frame(server, client, OP_RESPONSE)),
    ]
    for i, segment in enumerate(segments, 1):
        frames.append(("RW 2 -> 3, HTTP responses 200 and 404, part %d of %d: %r"
                       % (i, len(segments), segment.decode()),
                       virtio_frame(server, client, OP_RW, payload=segment)))
    return frames


def http2_frame(type_, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", type_, flags, stream) + payload


def http2_prior_knowledge():
    """HTTP/2 without TLS on a port nobody registered: found by its preface,
    the server's side by the client's; a connection without the preface is
    not HTTP/2."""
    svc = (CID_HOST, 5000)
    a, b = (CID_GUEST, 43000), (CID_GUEST, 43001)
    settings, settings_ack = http2_frame(4, 0, 0), http2_frame(4, 1, 0)
    # HPACK: :method GET, :scheme http, :path /, :authority vm.example
    request = http2_frame(1, 0x05, 1, b"\x82\x86\x84\x41\x0avm.example")
    response = http2_frame(1, 0x04, 1, b"\x88") + http2_frame(0, 0x01, 1, b"hello")
    client_first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings
    return [
        ("REQUEST 3:43000 -> 2:5000", virtio_frame(a, svc, OP_REQUEST)),
        ("RESPONSE", virtio_frame(svc, a, OP_RESPONSE)),
        ("RW 3 -> 2, the HTTP/2 preface and SETTINGS", virtio_frame(a, svc, OP_RW, payload=client_first)),
        ("RW 2 -> 3, SETTINGS", virtio_frame(svc, a, OP_RW, payload=settings, fwd_cnt=len(client_first))),
        ("RW 3 -> 2, SETTINGS ack and HEADERS (GET /)",
         virtio_frame(a, svc, OP_RW, payload=settings_ack + request, fwd_cnt=len(settings))),
        ("RW 2 -> 3, SETTINGS ack, HEADERS (200) and DATA \"hello\"",
         virtio_frame(svc, a, OP_RW, payload=settings_ack + response,
                      fwd_cnt=len(client_first) + len(settings_ack) + len(request))),
        ("REQUEST 3:43001 -> 2:5000", virtio_frame(b, svc, OP_REQUEST)),
        ("RESPONSE", virtio_frame(svc, b, OP_RESPONSE)),
        ("RW 3 -> 2, SETTINGS without the preface", virtio_frame(b, svc, OP_RW, payload=settings)),
        ("RW 2 -> 3, SETTINGS", virtio_frame(svc, b, OP_RW, payload=settings, fwd_cnt=len(settings))),
    ]


def late_protocol():
    """Heuristics see a direction's first payload; later ones only when the
    connection's start was not captured."""
    svc = (CID_HOST, 7000)
    a, b, c = (CID_GUEST, 41000), (CID_GUEST, 41001), (CID_GUEST, 41002)
    binary = bytes(range(32))
    request = b"GET /first HTTP/1.1\r\nHost: c\r\n\r\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    return [
        ("REQUEST 3:41000 -> 2:7000", virtio_frame(a, svc, OP_REQUEST)),
        ("RESPONSE", virtio_frame(svc, a, OP_RESPONSE)),
        ("RW 3:41000 -> 2, 32 binary bytes: the first payload of the direction",
         virtio_frame(a, svc, OP_RW, payload=binary)),
        ("RW 3:41000 -> 2, an HTTP request after the binary start",
         virtio_frame(a, svc, OP_RW, payload=b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")),
        ("RW 3:41001 -> 2, 32 binary bytes: a connection whose start was not captured",
         virtio_frame(b, svc, OP_RW, payload=binary)),
        ("RW 3:41001 -> 2, an HTTP request",
         virtio_frame(b, svc, OP_RW, payload=b"GET /mid HTTP/1.1\r\nHost: b\r\n\r\n")),
        ("REQUEST 3:41002 -> 2:7000", virtio_frame(c, svc, OP_REQUEST)),
        ("RESPONSE", virtio_frame(svc, c, OP_RESPONSE)),
        ("RW 3:41002 -> 2, an HTTP request first", virtio_frame(c, svc, OP_RW, payload=request)),
        ("RW 2 -> 3:41002, its HTTP response",
         virtio_frame(svc, c, OP_RW, payload=response, fwd_cnt=len(request))),
        ("RW 3:41002 -> 2, 32 binary bytes", virtio_frame(c, svc, OP_RW, payload=binary, fwd_cnt=len(response))),
    ]


def many_streams(count):
    """count connections, interleaved round-robin phase by phase."""
    host = (CID_HOST, 1234)
    guests = [(CID_GUEST, 10000 + i) for i in range(count)]
    desc = "%d interleaved streams from 3:10000.. to 2:1234: REQUEST, RESPONSE, RW of 10 bytes, " \
           "SHUTDOWN 3, RST; each phase round-robin over all streams" % count
    phases = [
        lambda g: virtio_frame(g, host, OP_REQUEST),
        lambda g: virtio_frame(host, g, OP_RESPONSE),
        lambda g: virtio_frame(g, host, OP_RW, payload=b"%010d" % g[1]),
        lambda g: virtio_frame(g, host, OP_SHUTDOWN, flags=3),
        lambda g: virtio_frame(host, g, OP_RST, fwd_cnt=10),
    ]
    return [(desc, phase(g)) for phase in phases for g in guests]


def captures():
    """file name -> list of (packet description, problem or None, frame)."""
    caps = {
        "good.pcap": [(d, None, f) for d, f in good()],
        "http_request.pcap": [(d, None, f) for d, f in http_request()],
    }
    for name, desc, problem, frame in BAD_CASES:
        caps["bad_%s.pcap" % name] = [(desc, problem, frame)]
    for fname, pkts in analysis_cases().items():
        caps[fname] = [(d, None, f) for d, f in pkts]
    return caps


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

README_HEAD = """\
# Synthetic AF_VSOCK captures

Generated by `tools/gen_test_captures.py` (do not edit by hand: change the
script and rerun it; this file is written by the script too).  Classic pcap,
microsecond timestamps, version 2.4, snaplen 262144, LINKTYPE_VSOCK (271).
Timestamps start at 1700000000.000000 in every file and advance 1 ms per
packet.  Each record's original length equals its captured length.

Unless stated otherwise: vsockmon transport 2 (virtio), transport header
length 44, reserved 0, vsockmon CIDs/ports equal to the virtio ones, vsockmon
op derived from the virtio op (REQUEST/RESPONSE -> 1 connect, RST/SHUTDOWN ->
2 disconnect, RW -> 4 payload, CREDIT_UPDATE/CREDIT_REQUEST -> 3 control),
virtio len = payload length, buf_alloc 262144, flags 0, fwd_cnt 0.
Each `bad_*.pcap` holds exactly one packet built on an RW stream packet
3:50000 -> 2:1234 with payload "data", unless the row says otherwise.

Two other scripts write captures here, the same way, and list their packets
in their docstrings: `tools/gen_ttrpc_captures.py` (`ttrpc_*.pcap`, the Kata
agent's ttrpc) and `tools/gen_gvtap_captures.py` (`gvtap_*.pcap`,
gvisor-tap-vsock's network tunnel: a POST /connect tunnel with DHCP, ARP, DNS
and an HTTP download cut across packets, the same tunnel captured from its
middle, a /tunnel connection, HTTP's heuristic having matched first, and
damaged tunnels).

| file | packet | contents | what is wrong |
|---|---|---|---|
"""


APP_README_MARKER = "<!-- gen_app_captures.py -->"


def readme_text(caps):
    rows = []
    for fname, pkts in caps.items():
        if len(pkts) > 50:  # one row for a bulk capture
            rows.append("| %s | 1-%d | %s | - |\n" % (fname, len(pkts), pkts[0][0]))
            continue
        for i, (desc, problem, _) in enumerate(pkts, 1):
            rows.append("| %s | %d | %s | %s |\n"
                        % (fname, i, desc.replace("|", "\\|"),
                           (problem or "-").replace("|", "\\|")))
    return README_HEAD + "".join(rows)


# --------------------------------------------------------------------------


def output_dir(argv):
    """The folder named on the command line, or test-captures/synthetic; None
    after printing the usage when the arguments are wrong."""
    if len(argv) > 2:
        sys.stderr.write("usage: %s [OUTPUT_DIR]\n" % argv[0])
        return None
    if len(argv) == 2:
        outdir = argv[1]
    else:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        outdir = os.path.join(repo, "test-captures", "synthetic")
    os.makedirs(outdir, exist_ok=True)
    return outdir


def inet_checksum(data):
    """The Internet checksum (RFC 1071) of IPv4, TCP and UDP headers, for the
    generators that tunnel such packets."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_captures(argv, captures):
    """For the other generators: writes captures(), {file name: pcap bytes}, into
    the folder of the command line; returns the exit status."""
    outdir = output_dir(argv)
    if outdir is None:
        return 2
    caps = captures()
    for name, data in caps.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    print("wrote %d captures to %s" % (len(caps), outdir))
    return 0


def main(argv):
    outdir = output_dir(argv)
    if outdir is None:
        return 2
    caps = captures()
    for fname, pkts in caps.items():
        with open(os.path.join(outdir, fname), "wb") as f:
            f.write(pcap_bytes([frame for _, _, frame in pkts]))
    readme = os.path.join(outdir, "README.md")
    # tools/gen_app_captures.py writes its own section after a marker: keep it.
    tail = ""
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        if APP_README_MARKER in text:
            tail = "\n" + APP_README_MARKER + text.split(APP_README_MARKER, 1)[1]
    with open(readme, "w", encoding="utf-8", newline="\n") as f:
        f.write(readme_text(caps) + tail)
    print("wrote %d captures to %s" % (len(caps), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
