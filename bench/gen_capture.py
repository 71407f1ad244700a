#!/usr/bin/env python3
"""Generate a large, protocol-consistent AF_VSOCK capture for benchmarks.

    bench/gen_capture.py --packets 100000 --seed 1 --out /tmp/vsock-100k.pcap

Many connections are open at once and their packets interleave. Each one is
what a healthy Linux kernel would capture (32-byte vsockmon header + 44-byte
virtio header + payload, the two headers agreeing):

  * REQUEST -> RESPONSE, or REQUEST -> RST for a refused connection (no
    listener; the RST carries buf_alloc = fwd_cnt = 0);
  * request/response exchanges of mixed sizes (most below 4 KiB, a few up to
    256 KiB) cut into RW packets of at most 64 KiB;
  * credit accounting: every packet carries its sender's buf_alloc and fwd_cnt
    (bytes it has consumed); a sender never has more than
    peer_buf_alloc - (tx_cnt - peer_fwd_cnt) bytes outstanding; the receiver
    consumes data some time after it arrives and sends CREDIT_UPDATE when it has
    consumed more than buf_alloc - 64 KiB since it last told the peer, or when
    the sender is stalled (the sender then sometimes asks with CREDIT_REQUEST);
  * seqpacket connections (EOM on the last fragment of a message, EOR on some),
    with a CREDIT_UPDATE after each message read, as Linux does;
  * closes: SHUTDOWN rcv|send answered by RST (sometimes a second RST), a
    half-close (SHUTDOWN send) after which the peer still sends, and resets
    (RST in the middle of a connection).

Payloads are random bytes from a seeded pool, or HTTP/1.1 text on some
connections (--http-share). Output is a classic pcap (LINKTYPE_VSOCK 271),
written as it is generated (memory stays bounded by the number of open
connections), identical for identical arguments.

Standard library only.
"""

import argparse
import random
import struct
import sys

LINKTYPE_VSOCK = 271
MON = struct.Struct("<QQIIHHHH")
VIRTIO = struct.Struct("<QQIIIHHIII")
REC = struct.Struct("<IIII")

TYPE_STREAM, TYPE_SEQPACKET = 1, 2
OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7
MON_OP = {OP_REQUEST: 1, OP_RESPONSE: 1, OP_RST: 2, OP_SHUTDOWN: 2, OP_RW: 4,
          OP_CREDIT_UPDATE: 3, OP_CREDIT_REQUEST: 3}
MAX_PKT = 65536
# Ports no dissector claims (the plugin's port table has 1024-1026, 8000, 9000,
# 8080 for HTTP below): their payloads go to the data dissector, as with the
# built-in, so a comparison measures the vsock layer.
SERVICE_PORTS = (1234, 2222, 3000, 4050, 5000, 6000, 7000, 9999, 12345)
HTTP_PORT = 8080

POOL_SIZE = 1 << 20


class Side:
    __slots__ = ("cid", "port", "buf_alloc", "tx_cnt", "rx_cnt", "fwd_cnt", "last_fwd_sent",
                 "peer_buf_alloc", "peer_fwd_cnt", "pending")

    def __init__(self, cid, port, buf_alloc):
        self.cid, self.port, self.buf_alloc = cid, port, buf_alloc
        self.tx_cnt = 0          # payload bytes sent
        self.rx_cnt = 0          # payload bytes received
        self.fwd_cnt = 0         # payload bytes consumed by the application
        self.last_fwd_sent = 0   # fwd_cnt in the last packet this side sent
        self.peer_buf_alloc = 0
        self.peer_fwd_cnt = 0
        self.pending = []        # sizes of received packets not yet consumed

    def credit(self):
        return self.peer_buf_alloc - (self.tx_cnt - self.peer_fwd_cnt)


class Conn:
    """One connection as a generator of packets: (side index, op, flags, payload length, payload kind)."""

    def __init__(self, gen, rng):
        self.rng = rng
        guest = rng.randrange(3, 40)
        if rng.random() < 0.15:
            c_cid, s_cid = 1, 1                       # loopback
        elif rng.random() < 0.5:
            c_cid, s_cid = guest, 2                   # guest -> host
        else:
            c_cid, s_cid = 2, guest                   # host -> guest
        self.http = rng.random() < gen.http_share
        s_port = HTTP_PORT if self.http else rng.choice(SERVICE_PORTS)
        c_port = rng.getrandbits(32) if rng.random() < 0.7 else rng.randrange(1024, 65536)
        buf = (262144, 262144, 262144, 65536, 1048576)
        self.sides = (Side(c_cid, c_port, rng.choice(buf)), Side(s_cid, s_port, rng.choice(buf)))
        self.type = TYPE_SEQPACKET if (not self.http and rng.random() < gen.seqpacket_share) else TYPE_STREAM
        self.steps = self.short_script() if gen.short else self.script()

    # -- packets ---------------------------------------------------------
    def emit(self, side, op, flags=0, length=0, msg=None):
        s, peer = self.sides[side], self.sides[1 - side]
        if op == OP_RST and getattr(self, "refused", False):
            buf_alloc, fwd = 0, 0
        else:
            buf_alloc, fwd = s.buf_alloc, s.fwd_cnt
            s.last_fwd_sent = s.fwd_cnt
            peer.peer_buf_alloc, peer.peer_fwd_cnt = buf_alloc, fwd
        if op == OP_RW:
            s.tx_cnt += length
            peer.rx_cnt += length
            peer.pending.append(length)
        return (s.cid, peer.cid, s.port, peer.port, op, flags, buf_alloc, fwd & 0xFFFFFFFF, length,
                self.type, msg if self.http else None)

    def consume(self, side, everything=False):
        """The application of side reads what has arrived; maybe a CREDIT_UPDATE."""
        s = self.sides[side]
        while s.pending and (everything or self.rng.random() < 0.8):
            s.fwd_cnt += s.pending.pop(0)
        if s.fwd_cnt - s.last_fwd_sent > s.buf_alloc - MAX_PKT:
            yield self.emit(side, OP_CREDIT_UPDATE)

    def send(self, side, size, seq_flags=0):
        """size payload bytes from side, cut by packet size and credit."""
        s, rng = self.sides[side], self.rng
        left = size
        while left > 0:
            if s.credit() <= 0:
                if rng.random() < 0.1:
                    yield self.emit(side, OP_CREDIT_REQUEST)
                yield from self.consume(1 - side, everything=True)
                if s.credit() <= 0:
                    yield self.emit(1 - side, OP_CREDIT_UPDATE)
            n = min(left, MAX_PKT, s.credit())
            msg = (side == 0, size, size - left)   # (request?, message size, offset in it)
            left -= n
            flags = seq_flags if (left == 0 and self.type == TYPE_SEQPACKET) else 0
            yield self.emit(side, OP_RW, flags, n, msg)
            if rng.random() < 0.6:
                yield from self.consume(1 - side)

    def message_size(self):
        if self.http:
            return self.rng.randrange(120, 512) if self.rng.random() < 0.7 else self.rng.randrange(512, 32768)
        r = self.rng.random()
        if r < 0.70:
            return self.rng.randrange(16, 512)
        if r < 0.95:
            return self.rng.randrange(512, 4096)
        if r < 0.995:
            return self.rng.randrange(4096, 32768)
        return self.rng.randrange(32768, 262144)

    def short_script(self):
        """A connection for one message, as sd_notify opens one per notification:
        REQUEST, RESPONSE, 20-200 bytes, SHUTDOWN, RST (five packets)."""
        yield self.emit(0, OP_REQUEST)
        yield self.emit(1, OP_RESPONSE)
        yield from self.send(0, self.rng.randrange(20, 200), 1)
        yield from self.consume(1, everything=True)
        yield self.emit(0, OP_SHUTDOWN, 3)
        yield self.emit(1, OP_RST)

    def script(self):
        rng = self.rng
        yield self.emit(0, OP_REQUEST)
        if rng.random() < 0.05:                   # refused: no listener
            self.refused = True
            yield self.emit(1, OP_RST)
            return
        yield self.emit(1, OP_RESPONSE)
        exchanges = rng.choice((1, 1, 2, 3, 5, 8, 20))
        reset_at = rng.randrange(exchanges) if rng.random() < 0.05 else None
        half_close = rng.random() < 0.1
        for i in range(exchanges):
            if i == reset_at:                     # reset in the middle
                yield self.emit(rng.randrange(2), OP_RST)
                return
            seq_flags = 1 | (2 if rng.random() < 0.3 else 0)
            yield from self.send(0, self.message_size(), seq_flags)
            if self.type == TYPE_SEQPACKET:
                yield from self.consume(1, everything=True)
                yield self.emit(1, OP_CREDIT_UPDATE)
            if half_close and i == exchanges - 1:
                yield self.emit(0, OP_SHUTDOWN, 2)  # client will send no more
            yield from self.send(1, self.message_size(), seq_flags)
            if self.type == TYPE_SEQPACKET:
                yield from self.consume(0, everything=True)
                yield self.emit(0, OP_CREDIT_UPDATE)
        yield from self.consume(0, everything=True)
        yield from self.consume(1, everything=True)
        closer = rng.randrange(2)
        yield self.emit(closer, OP_SHUTDOWN, 3)
        yield self.emit(1 - closer, OP_RST)
        if rng.random() < 0.3:
            yield self.emit(closer, OP_RST)       # the closer's own RST when it closes


class Generator:
    def __init__(self, seed, streams, http_share, seqpacket_share, short=False):
        self.rng = random.Random(seed)
        self.short = short
        self.streams = streams
        self.http_share = http_share
        self.seqpacket_share = seqpacket_share
        self.pool = self.rng.randbytes(POOL_SIZE + MAX_PKT)
        self.http_resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        self.filler = (b"lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 1200)[:MAX_PKT]
        self._http_cache_key = None
        self._http_cache = b""

    def payload(self, length, msg):
        if msg is None:
            off = self.rng.randrange(POOL_SIZE)
            return self.pool[off:off + length]
        request, size, offset = msg
        return self.http_message(request, size)[offset:offset + length]

    def http_message(self, request, size):
        """An HTTP/1.1 request or response of exactly size bytes (Content-Length agrees)."""
        key = (request, size)
        if self._http_cache_key != key:
            if request:
                head = b"POST /api/v1/items HTTP/1.1\r\nHost: vsock\r\nContent-Length: %d\r\n\r\n"
            else:
                head = self.http_resp
            head = head.replace(b"%d", b"%06d")   # fixed width: the header length is known
            cl = size - len(head % 0)
            body = (self.filler * (cl // len(self.filler) + 1))[:cl]
            self._http_cache = head % cl + body
            self._http_cache_key = key
        return self._http_cache

    def packets(self, n):
        rng = self.rng
        conns = [Conn(self, random.Random(rng.getrandbits(64))) for _ in range(self.streams)]
        produced = 0
        while produced < n:
            i = rng.randrange(len(conns))
            pkt = next(conns[i].steps, None)
            if pkt is None:
                conns[i] = Conn(self, random.Random(rng.getrandbits(64)))
                continue
            produced += 1
            yield pkt


def write_capture(out, n, seed, streams, http_share, seqpacket_share, short=False):
    gen = Generator(seed, streams, http_share, seqpacket_share, short)
    rng = random.Random(seed ^ 0x5EED)
    ts = 1_700_000_000 * 1_000_000
    stats = {"packets": 0, "bytes": 0}
    mon_pack, virtio_pack, rec_pack = MON.pack, VIRTIO.pack, REC.pack
    with open(out, "wb", buffering=1 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_VSOCK))
        for (src_cid, dst_cid, src_port, dst_port, op, flags, buf_alloc, fwd, length, vtype,
             msg) in gen.packets(n):
            payload = gen.payload(length, msg) if length else b""
            hdr = mon_pack(src_cid, dst_cid, src_port, dst_port, MON_OP[op], 2, 44, 0) + \
                virtio_pack(src_cid, dst_cid, src_port, dst_port, length, vtype, op, flags, buf_alloc, fwd)
            size = 76 + length
            ts += 1 + int(rng.expovariate(1 / 40.0))
            f.write(rec_pack(ts // 1_000_000, ts % 1_000_000, size, size))
            f.write(hdr)
            if length:
                f.write(payload)
            stats["packets"] += 1
            stats["bytes"] += size
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--streams", type=int, default=64, help="connections open at once (default 64)")
    ap.add_argument("--http-share", type=float, default=0.1,
                    help="share of connections carrying HTTP/1.1 text (default 0.1)")
    ap.add_argument("--seqpacket-share", type=float, default=0.1,
                    help="share of (non-HTTP) connections that are seqpacket (default 0.1)")
    ap.add_argument("--short", action="store_true",
                    help="one short message per connection (five packets each), as sd_notify sends")
    args = ap.parse_args(argv)
    stats = write_capture(args.out, args.packets, args.seed, args.streams, args.http_share,
                          args.seqpacket_share, args.short)
    print(f"{args.out}: {stats['packets']} packets, {stats['bytes']} bytes of frames "
          f"({stats['bytes'] / max(stats['packets'], 1):.0f} per packet), seed {args.seed}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
