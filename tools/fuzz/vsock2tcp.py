#!/usr/bin/env python3
"""Rewrites the RW packets of a vsock capture as TCP over IPv4 (CID ->
10.x.y.z, ports kept, sequence numbers counted per direction, every packet
new data), so that a dissector bug found through the vsock hand-off can be
replayed with Wireshark alone, and so that a capture's application data can
be timed over TCP (payloads over 65,000 bytes become two segments):

    tools/fuzz/vsock2tcp.py IN.pcap OUT.pcap
    tshark -n -2 -V -r OUT.pcap -d tcp.port==443,tls -o tcp.desegment_tcp_streams:FALSE

Standard library only."""
import struct, sys

MAX_SEGMENT = 65000

def checksum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def ip_of(cid):
    cid &= 0xffffff
    return bytes([10, (cid >> 16) & 255, (cid >> 8) & 255, cid & 255])

def main(src, dst):
    data = open(src, "rb").read()
    magic = data[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)]
    off, seqs, n = 24, {}, 0
    while off + 16 <= len(data):
        ts, tu, cap, orig = struct.unpack(e + "IIII", data[off:off+16]); off += 16
        pkt = data[off:off+cap]; off += cap
        if len(pkt) < 76: continue
        scid, dcid, sport, dport, op, trans, tlen, _ = struct.unpack("<QQIIHHHH", pkt[:32])
        vlen, vtype, vop = struct.unpack("<IHH", pkt[56:64])
        if vop != 5 or trans != 2: continue
        payload = pkt[32 + max(tlen, 44):][:vlen]
        if not payload: continue
        key = (scid, sport, dcid, dport)
        # An IPv4 packet holds at most 65,495 bytes of TCP payload: larger RW
        # payloads (up to 64 KiB) become two segments.
        for i in range(0, len(payload), MAX_SEGMENT):
            segment = payload[i:i + MAX_SEGMENT]
            seq = seqs.get(key, 1000)
            seqs[key] = (seq + len(segment)) & 0xffffffff
            tcp = struct.pack("!HHIIBBHHH", sport & 0xffff, dport & 0xffff, seq, 0, 5 << 4, 0x18, 65535, 0, 0) + segment
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, ip_of(scid), ip_of(dcid))
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp
            out.append(struct.pack("<IIII", ts, tu, len(frame), len(frame)) + frame); n += 1
    open(dst, "wb").write(b"".join(out))
    print(n, "TCP packets")

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: vsock2tcp.py IN.pcap OUT.pcap")
    main(sys.argv[1], sys.argv[2])
