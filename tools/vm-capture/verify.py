#!/usr/bin/env python3
"""Check the captures in DIR against their JSON ground truth, using tshark's built-in
vsock dissector (no plugin needed). Prints one line per check; exits 1 if any failed.

    tools/vm-capture/verify.py [DIR]        (default test-captures/real)
"""
import collections
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


def verify(path, ck):
    base = path[:-5]
    doc = json.load(open(path))
    pcap = base + ".pcap"
    rows = packets(pcap)
    ops = collections.Counter(OPS.get(r["op"], str(r["op"])) for r in rows)
    print("%s: %d packets, %d bytes; %s" % (os.path.basename(pcap), len(rows), os.path.getsize(pcap),
                                           ", ".join("%s %d" % kv for kv in sorted(ops.items()))))
    ck.check("linktype 271", linktype(pcap) == 271)
    ck.check("packet count matches tcpdump's", len(rows) == doc["capture"]["packets_captured"],
             "%d vs %s" % (len(rows), doc["capture"]["packets_captured"]))
    ck.check("no kernel drops", doc["capture"]["packets_dropped_by_kernel"] == 0)
    ck.check("transport virtio, header 76 bytes", all(r["trans"] == 2 and r["frame_len"] >= 76 for r in rows))
    ck.check("no application errors recorded", not doc["errors"], "; ".join(doc["errors"]))
    sc = doc["scenario"]
    for c in doc["connections"]:
        if "src" not in c or c.get("result") != "established":
            continue
        src, dst = (c["src"]["cid"], c["src"]["port"]), (c["dst"]["cid"], c["dst"]["port"])
        conn_rows = [r for r in rows if {r["src"], r["dst"]} == {src, dst}]
        ck.check("%s: REQUEST/RESPONSE seen" % c["name"],
                 any(r["op"] == 1 and r["src"] == src for r in conn_rows)
                 and any(r["op"] == 2 and r["src"] == dst for r in conn_rows))
        ck.check("%s: virtio type %d" % (c["name"], c["virtio_type"]),
                 all(r["type"] == c["virtio_type"] for r in conn_rows))
        for dname, a, b in (("src_to_dst", src, dst), ("dst_to_src", dst, src)):
            sent, read = c[dname]["bytes"], c[dname]["received_bytes"]
            got = flow_bytes(rows, a, b)
            if sc in ("reset", "unread_close"):
                # Data can be queued but never sent, or sent but never read.
                ck.check("%s %s: read %d <= RW payload %d <= sent %d" % (c["name"], dname, read, got, sent),
                         read <= got <= sent)
            else:
                ck.check("%s %s: RW payload %d == bytes sent and read" % (c["name"], dname, got),
                         got == sent == read, "json says sent %d, read %d" % (sent, read))
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
