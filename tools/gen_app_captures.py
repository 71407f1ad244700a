#!/usr/bin/env python3
"""Generate the synthetic captures of the application protocols over vsock:
AWS Nitro Enclaves (nitro_*.pcap), systemd notifications (sdnotify_*.pcap),
the QEMU guest agent (qemuga_*.pcap) and the Kata Containers agent's log and
debug console (kata_*.pcap).

Writes test-captures/synthetic/ (relative to the repository root, found from
this script's location) or the directory given as the only argument, and the
section of test-captures/synthetic/README.md after the line
"<!-- gen_app_captures.py -->" (gen_test_captures.py keeps that section).
Deterministic: rerunning produces identical bytes.  Standard library only; the
vsock frames come from gen_test_captures.virtio_frame().  tests/test_app_protocols.py
relies on the frame numbers listed in CAPTURES below (1-based).

Usage: gen_app_captures.py [OUTPUT_DIR]
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_test_captures import (  # noqa: E402  (the path is set just above)
    output_dir, OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN, SEQ_EOM, SEQ_EOR,
    SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_SEQPACKET, TYPE_STREAM, pcap_bytes, virtio_frame)

README_MARKER = "<!-- gen_app_captures.py -->"

# Nitro: the parent instance is CID 3, the enclave here CID 16, the hypervisor 0.
PARENT_CID, ENCLAVE_CID, HYPERVISOR_CID = 3, 16, 0
HOST_CID, GUEST_CID = 2, 3


class Connection:
    """The frames of one connection with their descriptions; fwd_cnt follows
    what each side has received."""

    def __init__(self, frames, client, server, type_=TYPE_STREAM):
        self.frames = frames          # shared list of (description, frame)
        self.side = {"c": client, "s": server}
        self.received = {"c": 0, "s": 0}
        self.type_ = type_

    def _add(self, who, op, desc, payload=b"", flags=0):
        peer = "s" if who == "c" else "c"
        frame = virtio_frame(self.side[who], self.side[peer], op, type_=self.type_, flags=flags,
                             payload=payload, fwd_cnt=self.received[who])
        src, dst = self.side[who], self.side[peer]
        self.frames.append(("%s %d:%d -> %d:%d %s" % (op_name(op), src[0], src[1], dst[0], dst[1], desc), frame))
        self.received[peer] += len(payload) if op == OP_RW else 0

    def open(self):
        self._add("c", OP_REQUEST, "")
        self._add("s", OP_RESPONSE, "")
        return self

    def send(self, who, payload, desc=None, flags=0):
        self._add(who, OP_RW, desc if desc is not None else shown(payload), payload, flags)

    def close(self, who="c"):
        """Half-close by who, the peer closes, who resets (sd_notify's order)."""
        peer = "s" if who == "c" else "c"
        self._add(who, OP_SHUTDOWN, "send", flags=SHUTDOWN_SEND)
        self._add(peer, OP_SHUTDOWN, "rcv,send", flags=SHUTDOWN_RCV | SHUTDOWN_SEND)
        self._add(who, OP_RST, "")


def op_name(op):
    return {OP_REQUEST: "REQUEST", OP_RESPONSE: "RESPONSE", OP_RST: "RST", OP_SHUTDOWN: "SHUTDOWN",
            OP_RW: "RW"}[op]


def shown(payload):
    text = payload.decode("latin-1")
    text = "".join(c if 32 <= ord(c) < 127 else "\\x%02x" % ord(c) for c in text)
    return '"%s"' % (text if len(text) <= 90 else text[:87] + "...")


# --------------------------------------------------------------------------
# AWS Nitro Enclaves
# --------------------------------------------------------------------------


def tls_client_hello(server_name):
    """A TLS 1.2 ClientHello with SNI (fixed random, deterministic)."""
    name = server_name.encode()
    sni = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    extensions = struct.pack(">HH", 0, len(sni)) + sni
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack(">H", 4) + b"\xc0\x2f\x00\x9c"
            + b"\x01\x00" + struct.pack(">H", len(extensions)) + extensions)
    handshake = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def tls_server_hello():
    body = b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\xc0\x2f" + b"\x00" + struct.pack(">H", 0)
    handshake = b"\x02" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x03" + struct.pack(">H", len(handshake)) + handshake


def nitro_heartbeat():
    frames = []
    c = Connection(frames, (ENCLAVE_CID, 1030), (PARENT_CID, 9000)).open()
    c.send("c", b"\xb7", "heartbeat 0xB7")
    c.send("s", b"\xb7", "echo 0xB7")
    c.close()
    return frames


def nitro_bad():
    frames = []
    c = Connection(frames, (ENCLAVE_CID, 1031), (PARENT_CID, 9000)).open()
    c.send("c", b"\x42", "heartbeat 0x42 (wrong value)")
    c.send("s", b"\x42", "echo 0x42")
    d = Connection(frames, (ENCLAVE_CID, 1032), (PARENT_CID, 9000)).open()
    d.send("c", b"\xb7\x00\x01", "heartbeat 0xB7 and 2 extra bytes")
    return frames


CONSOLE_PORT = 10000 + ENCLAVE_CID


def nitro_console():
    frames = []
    c = Connection(frames, (PARENT_CID, 1040), (HYPERVISOR_CID, CONSOLE_PORT)).open()
    c.send("s", b"[    0.000000] Linux version 5.10.186 (nitro)\r\n[    0.000000] Command line: reboot=k panic=30\r\n")
    c.send("s", b"[    1.234567] nsm: loading out-of-tree module\r\n")
    c.send("s", b"enclave login: ")
    # Another console port below 10004 is no enclave's: not recognised.
    d = Connection(frames, (PARENT_CID, 1041), (HYPERVISOR_CID, 10002)).open()
    d.send("s", b"not a console\r\n")
    return frames


def nitro_proxy():
    frames = []
    c = Connection(frames, (ENCLAVE_CID, 1050), (PARENT_CID, 8000)).open()
    c.send("c", tls_client_hello("kms.us-east-1.amazonaws.com"), "TLS ClientHello, SNI kms.us-east-1.amazonaws.com")
    c.send("s", tls_server_hello(), "TLS ServerHello")
    return frames


# --------------------------------------------------------------------------
# systemd notifications: one message per connection, the guest's PID 1 on a
# privileged port, the VMM listening on the port it chose.
# --------------------------------------------------------------------------

VMM = (HOST_CID, 41234)


def sdnotify():
    frames = []
    messages = [b"X_SYSTEMD_SIGNALS_LEVEL=2", b"X_SYSTEMD_UNIT_ACTIVE=basic.target",
                b"READY=1\nSTATUS=Startup finished in 1.234s", b"EXIT_STATUS=3"]
    for i, message in enumerate(messages):
        c = Connection(frames, (GUEST_CID, 1023 - i), VMM).open()
        c.send("c", message)
        c.close()
    return frames


def sdnotify_split():
    frames = []
    c = Connection(frames, (GUEST_CID, 1019), VMM).open()
    c.send("c", b"READY=1\nSTA")
    c.send("c", b"TUS=Running\nERR")
    c.send("c", b"NO=0")
    c.close()
    d = Connection(frames, (GUEST_CID, 1018), VMM).open()
    d.send("c", b"REA")
    d.send("c", b"DY=1\n")
    d.close()
    return frames


def sdnotify_bad():
    frames = []
    c = Connection(frames, (GUEST_CID, 1017), VMM).open()
    c.send("c", b"READY=1\nno equals sign here\n=orphan value\nERRNO=abc\nMAINPID=99999999999\nWATCHDOG=trigger\n")
    c.close()
    d = Connection(frames, (GUEST_CID, 1016), VMM).open()
    d.send("c", b"hello world\n")
    return frames


def sdnotify_seqpacket():
    frames = []
    c = Connection(frames, (GUEST_CID, 1015), VMM, type_=TYPE_SEQPACKET).open()
    c.send("c", b"STATUS=Reached target", "first part of the message, no EOM")
    c.send("c", b" multi-user.target\nREADY=1", "the rest, EOM|EOR", flags=SEQ_EOM | SEQ_EOR)
    c.close()
    return frames


# --------------------------------------------------------------------------
# QEMU guest agent: the host connects to qemu-ga listening in the guest.
# --------------------------------------------------------------------------

QGA = (GUEST_CID, 4444)

GUEST_INFO_REPLY = (b'{"return": {"version": "7.2.19", "supported_commands": ['
                    + b", ".join(b'{"enabled": true, "name": "guest-cmd-%02d", "success-response": true}' % i
                                 for i in range(40)) + b"]}}\n")
GUEST_FILE_OPEN_ERROR = (b'{"error": {"class": "GenericError", "desc": "failed to open file \'/nonexistent\' '
                         b'(mode: \'r\'): No such file or directory"}}\n')


def qemuga():
    frames = []
    c = Connection(frames, (HOST_CID, 50100), QGA).open()
    c.send("c", b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 123456}}')
    c.send("s", b'\xff{"return": 123456}\n')
    c.send("c", b'{"execute": "guest-ping"}\n')
    c.send("s", b'{"return": {}}\n')
    c.send("c", b'{"execute": "gue')
    c.send("c", b'st-info"}\n')
    half = len(GUEST_INFO_REPLY) // 2
    c.send("s", GUEST_INFO_REPLY[:half], "first half of the guest-info reply (%d bytes)" % half)
    c.send("s", GUEST_INFO_REPLY[half:], "rest of the guest-info reply (%d bytes)" % (len(GUEST_INFO_REPLY) - half))
    c.send("c", b'{"execute": "guest-get-osinfo"}\n{"execute": "guest-get-time"}\n')
    c.send("s", b'{"return": {"id": "debian", "version-id": "12"}}\n{"return": 1700000000123456789}\n')
    c.send("c", b'{"execute": "guest-file-open", "arguments": {"path": "/nonexistent", "mode": "r"}}\n')
    c.send("s", GUEST_FILE_OPEN_ERROR)
    c.send("c", b'{"execute": "guest-shutdown"}\n')
    c.close()
    return frames


def qemuga_bad():
    frames = []
    c = Connection(frames, (HOST_CID, 50101), QGA).open()
    c.send("c", b'{"execute": "guest-ping"}\n')
    c.send("s", b'{"return": {]}\n{"return": {}}\n')
    c.send("c", b'not json at all\n{"execute": "guest-info"}\n')
    c.send("s", b'{"return": {"version": "7.2.19"}}\n{"return": {}}\n')
    c.send("c", b'{"execute": "guest-get-')
    return frames


# --------------------------------------------------------------------------
# Kata Containers: the runtime on the host connects to the agent's log port
# 1025 and, for `kata-runtime exec`, to its debug console on 1026.
# --------------------------------------------------------------------------

def kata_log_record(level, msg, subsystem="root"):
    return (b'{"msg":"%s","level":"%s","ts":"2023-11-14T22:13:20.123456789Z","pid":"1","version":"3.2.0",'
            b'"subsystem":"%s","name":"kata-agent","source":"agent"}\n' % (msg.encode(), level.encode(),
                                                                          subsystem.encode()))


def kata():
    frames = []
    log = Connection(frames, (HOST_CID, 50200), (GUEST_CID, 1025)).open()
    log.send("s", kata_log_record("INFO", "announce") + kata_log_record("DEBG", "starting uevents handler",
                                                                        "uevent"))
    rec = kata_log_record("INFO", "ttRPC server started", "rpc")
    log.send("s", rec[:40], "first 40 bytes of a log record")
    log.send("s", rec[40:], "rest of the log record")
    log.send("s", b"kata-agent: plain text line\n")
    log.send("s", b"{not json\n")
    console = Connection(frames, (HOST_CID, 50201), (GUEST_CID, 1026)).open()
    console.send("c", b"ls /\n")
    console.send("s", b"bin\r\nboot\r\ndev\r\n")
    console.send("s", b"# ")
    return frames


def kata_truncated():
    frames = []
    log = Connection(frames, (HOST_CID, 50202), (GUEST_CID, 1025)).open()
    log.send("s", kata_log_record("WARN", "cut short")[:50], "a log record cut short (capture ends)")
    return frames


CAPTURES = {
    "nitro_heartbeat.pcap": nitro_heartbeat,
    "nitro_bad.pcap": nitro_bad,
    "nitro_console.pcap": nitro_console,
    "nitro_proxy.pcap": nitro_proxy,
    "sdnotify.pcap": sdnotify,
    "sdnotify_split.pcap": sdnotify_split,
    "sdnotify_bad.pcap": sdnotify_bad,
    "sdnotify_seqpacket.pcap": sdnotify_seqpacket,
    "qemuga.pcap": qemuga,
    "qemuga_bad.pcap": qemuga_bad,
    "kata.pcap": kata,
    "kata_truncated.pcap": kata_truncated,
}


def readme_section(caps):
    rows = [README_MARKER, "",
            "## Application protocols over vsock", "",
            "Written by `tools/gen_app_captures.py` (AWS Nitro Enclaves, systemd notifications, the QEMU",
            "guest agent, the Kata agent's log and console); frames as described above.", "",
            "| file | packet | contents |", "|---|---|---|"]
    for name, frames in caps.items():
        for i, (desc, _) in enumerate(frames, 1):
            rows.append("| %s | %d | %s |" % (name, i, desc.replace("|", "\\|")))
    return "\n".join(rows) + "\n"


def update_readme(outdir, caps):
    path = os.path.join(outdir, "README.md")
    head = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            head = f.read().split(README_MARKER)[0]
    if head and not head.endswith("\n\n"):
        head = head.rstrip("\n") + "\n\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(head + readme_section(caps))


def main(argv):
    outdir = output_dir(argv)
    if outdir is None:
        return 2
    caps = {name: make() for name, make in CAPTURES.items()}
    for name, frames in caps.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(pcap_bytes([frame for _, frame in frames]))
    update_readme(outdir, caps)
    print("wrote %d captures to %s" % (len(caps), outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
