#!/usr/bin/env python3
"""Check the captures in DIR against their JSON ground truth, using tshark's built-in
vsock dissector (no plugin needed). Prints one line per check; exits 1 if any failed.

    tools/vm-capture/verify.py [DIR]        (default test-captures/real)
"""
import collections
import hashlib
import json
import os
import struct
import subprocess
import sys

OPS = {0: "INVALID", 1: "REQUEST", 2: "RESPONSE", 3: "RST", 4: "SHUTDOWN", 5: "RW",
       6: "CREDIT_UPDATE", 7: "CREDIT_REQUEST"}
FIELDS = ["vsock.src_cid", "vsock.dst_cid", "vsock.src_port", "vsock.dst_port", "vsock.trans",
          "vsock.virtio.type", "vsock.virtio.op", "vsock.virtio.flags", "vsock.virtio.len",
          "frame.len"]


def packets(pcap):
    cmd = ["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        v = line.split(",")
        rows.append({"src": (int(v[0]), int(v[2])), "dst": (int(v[1]), int(v[3])), "trans": int(v[4]),
                     "type": int(v[5]), "op": int(v[6]), "flags": int(v[7], 16), "len": int(v[8]),
                     "frame_len": int(v[9])})
    return rows


def raw_frames(pcap):
    """The captured bytes of every packet, in order (classic pcap, as tcpdump writes it)."""
    with open(pcap, "rb") as f:
        data = f.read()
    endian = "<" if struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def linktype(pcap):
    with open(pcap, "rb") as f:
        hdr = f.read(24)
    magic = struct.unpack("<I", hdr[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    return struct.unpack(endian + "I", hdr[20:24])[0] & 0x0FFFFFFF


class Checker:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, detail=""):
        print("  %-4s %s%s" % ("ok" if ok else "FAIL", name, (": " + detail) if detail else ""))
        if not ok:
            self.failed += 1


def flow_bytes(rows, src, dst):
    return sum(r["len"] for r in rows if r["op"] == 5 and r["src"] == src and r["dst"] == dst)


def flow_payload(rows, src, dst):
    """The RW payload bytes of one direction, in capture order (virtio.len bytes after the
    76-byte vsockmon + virtio header)."""
    return b"".join(r["raw"][76:76 + r["len"]] for r in rows
                    if r["op"] == 5 and r["src"] == src and r["dst"] == dst)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def known(d, *keys):
    """The first of keys whose value the JSON knows (not null)."""
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def split_lines(b):
    out = []
    while b:
        i = b.find(b"\n")
        if i < 0:
            out.append(b)
            break
        out.append(b[:i + 1])
        b = b[i + 1:]
    return out


def split_frames(b):
    """2-byte little-endian length + Ethernet frame, repeated (gvisor-tap-vsock's framing)."""
    out = []
    while len(b) >= 2:
        n = struct.unpack("<H", b[:2])[0]
        out.append(b[2:2 + n])
        b = b[2 + n:]
    return out, len(b)


def verify(path, ck):
    base = path[:-5]
    doc = json.load(open(path))
    pcap = base + ".pcap"
    rows = packets(pcap)
    raws = raw_frames(pcap)
    for r, raw in zip(rows, raws):
        r["raw"] = raw
    ops = collections.Counter(OPS.get(r["op"], str(r["op"])) for r in rows)
    print("%s: %d packets, %d bytes; %s" % (os.path.basename(pcap), len(rows), os.path.getsize(pcap),
                                           ", ".join("%s %d" % kv for kv in sorted(ops.items()))))
    ck.check("linktype 271", linktype(pcap) == 271)
    ck.check("pcap reader and tshark see the same packets", len(raws) == len(rows),
             "%d vs %d" % (len(raws), len(rows)))
    ck.check("packet count matches tcpdump's", len(rows) == doc["capture"]["packets_captured"],
             "%d vs %s" % (len(rows), doc["capture"]["packets_captured"]))
    ck.check("no kernel drops", doc["capture"]["packets_dropped_by_kernel"] == 0)
    ck.check("transport virtio, header 76 bytes", all(r["trans"] == 2 and r["frame_len"] >= 76 for r in rows))
    ck.check("no application errors recorded", not doc["errors"], "; ".join(doc["errors"]))
    sc = doc["scenario"]
    # Where replies travel: normally dst -> src; loopback_cid2 records the addresses
    # vsock_loopback really uses (its own CID 1 as the source of everything).
    wire = doc.get("wire_addresses_expected")
    for c in doc["connections"]:
        if "src" not in c or c.get("result") != "established":
            continue
        src, dst = (c["src"]["cid"], c["src"]["port"]), (c["dst"]["cid"], c["dst"]["port"])
        up = (src, dst)
        down = (dst, src)
        if wire:
            up = tuple(tuple(wire["client_to_server"][k]) for k in ("src", "dst"))
            down = tuple(tuple(wire["server_to_client"][k]) for k in ("src", "dst"))
            ck.check("%s: client side %s:%s as the JSON says" % (c["name"], *up[0]), up[0] == src)
        conn_rows = [r for r in rows if (r["src"], r["dst"]) in (up, down)]
        ck.check("%s: REQUEST %s -> %s and RESPONSE %s -> %s seen" % (c["name"], up[0], up[1], *down),
                 any(r["op"] == 1 and (r["src"], r["dst"]) == up for r in conn_rows)
                 and any(r["op"] == 2 and (r["src"], r["dst"]) == down for r in conn_rows))
        ck.check("%s: virtio type %d" % (c["name"], c["virtio_type"]),
                 all(r["type"] == c["virtio_type"] for r in conn_rows))
        payloads = {}
        for dname, (a, b) in (("src_to_dst", up), ("dst_to_src", down)):
            sent, read = c[dname]["bytes"], c[dname]["received_bytes"]
            got = flow_bytes(rows, a, b)
            payloads[dname] = flow_payload(rows, a, b)
            if sc in ("reset", "unread_close"):
                # Data can be queued but never sent, or sent but never read.
                ck.check("%s %s: read %d <= RW payload %d <= sent %d" % (c["name"], dname, read, got, sent),
                         read <= got <= sent)
                continue
            # null = that end is a program that was not instrumented (qemu-ga, gvproxy).
            vals = [v for v in (sent, read) if v is not None]
            ck.check("%s %s: RW payload %d == bytes %s" % (c["name"], dname, got,
                                                          "sent and read" if len(vals) == 2 else
                                                          "sent" if sent is not None else "read"),
                     vals and all(v == got for v in vals), "json says sent %s, read %s" % (sent, read))
            want = known(c[dname], "received_sha256", "sha256")
            if want:
                ck.check("%s %s: sha256 of the RW payload" % (c["name"], dname),
                         sha(payloads[dname]) == want)
        if sc == "qemu_ga":
            verify_qga(c, payloads, ck)
        if sc == "gvproxy":
            verify_gvproxy(c, payloads, ck)
    if wire:
        cids = {r["src"][0] for r in rows}
        ck.check("every packet has source CID 1 (vsock_loopback)", cids == {1}, str(sorted(cids)))
        ck.check("no packet from CID 2", not any(r["src"][0] == 2 for r in rows))
    if sc == "refused":
        reqs = [r for r in rows if r["op"] == 1]
        rsts = [r for r in rows if r["op"] == 3]
        ck.check("every REQUEST answered by RST, no RESPONSE",
                 len(reqs) == len(rsts) == len(doc["connections"]) and ops["RESPONSE"] == 0)
    if sc == "credit":
        ck.check("CREDIT_UPDATE present", ops["CREDIT_UPDATE"] > 0, "%d" % ops["CREDIT_UPDATE"])
    if sc == "multi_halfclose":
        ck.check("half-close (SHUTDOWN SEND only) present",
                 any(r["op"] == 4 and r["flags"] == 2 for r in rows))
    if sc == "seqpacket":
        rw = [r for r in rows if r["op"] == 5]
        msgs = sum(len(c["src_to_dst"]["messages"]) + len(c["dst_to_src"]["messages"])
                   for c in doc["connections"])
        eom = sum(1 for r in rw if r["flags"] & 1)
        ck.check("one RW with EOM per message", eom == msgs, "%d EOM, %d messages" % (eom, msgs))
        ck.check("some RW with EOR", any(r["flags"] & 2 for r in rw))
        ck.check("some RW without EOM (multi-packet message)", any(not r["flags"] & 1 for r in rw))
    if sc in ("vhost", "vhost_guest"):
        cids = {r["src"][0] for r in rows} | {r["dst"][0] for r in rows}
        ck.check("host CID 2 and guest CID 3 only", cids == {2, 3}, str(sorted(cids)))
        over = sum(1 for r in rows if r["op"] == 5 and r["frame_len"] - 76 != r["len"])
        print("  note %d RW frames whose payload length differs from virtio len" % over)


def verify_qga(c, payloads, ck):
    """The client's lines and qemu-ga's reply lines, one by one, against the capture."""
    for dname, key in (("src_to_dst", "lines_sent"), ("dst_to_src", "lines_received")):
        lines = split_lines(payloads[dname])
        want = c[key]
        ck.check("%s %s: %d lines, each with its length and sha256" % (c["name"], key, len(want)),
                 [(len(x), sha(x)) for x in lines] == [(w["bytes"], w["sha256"]) for w in want],
                 "%d lines in the capture" % len(lines))
    kinds = [k for e in c["qga_exchanges"] for k in e.get("reply_kind", [])]
    ck.check("%s: error replies present (unknown command, malformed JSON)" % c["name"],
             kinds.count("error") >= 2, str(kinds))


def verify_gvproxy(c, payloads, ck):
    """POST request, then the forwarder's frames (or the tunnel's raw bytes), against the capture."""
    up, down = payloads["src_to_dst"], payloads["dst_to_src"]
    if "frames" in c:
        req = bytes.fromhex(c["post_request"]["hex"])
        ck.check("%s: stream starts with the POST /connect request" % c["name"], up.startswith(req))
        for dname, data, direction in (("src_to_dst", up[len(req):], "vm_to_gvproxy"),
                                       ("dst_to_src", down, "gvproxy_to_vm")):
            frames, rest = split_frames(data)
            want = [f for f in c["frames"] if f["direction"] == direction]
            ck.check("%s %s: %d length-prefixed frames, each with its length and sha256"
                     % (c["name"], direction, len(want)),
                     rest == 0 and [(len(f), sha(f)) for f in frames] == [(w["len"], w["sha256"]) for w in want],
                     "%d frames in the capture, %d bytes left over" % (len(frames), rest))
    if "tunnel" in c:
        t = c["tunnel"]
        req = bytes.fromhex(t["post_request"]["hex"])
        ck.check("%s: POST /tunnel then the raw bytes" % c["name"],
                 up.startswith(req) and sha(up[len(req):]) == t["client_sent_after_handshake"]["sha256"])
        ck.check("%s: OK then the raw reply" % c["name"],
                 down[:2] == b"OK" and sha(down[2:]) == t["client_read_after_handshake"]["sha256"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "test-captures", "real")
    ck = Checker()
    files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
    for f in files:
        verify(os.path.join(d, f), ck)
    print("%d captures checked, %d checks failed" % (len(files), ck.failed))
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
