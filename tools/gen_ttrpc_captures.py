#!/usr/bin/env python3
"""Generate the synthetic ttrpc test captures (Kata Containers agent protocol).

Writes test-captures/synthetic/ttrpc_*.pcap (relative to the repository root,
found from this script's location) or into the directory given as the only
argument.  Deterministic: rerunning produces identical bytes.  Standard
library only; the vsock frames come from gen_test_captures.virtio_frame().

ttrpc (github.com/containerd/ttrpc, PROTOCOL.md): each message is a 10-byte
big-endian header (data length u32, stream id u32, type u8: 1 request,
2 response, 3 data; flags u8: 1 remote closed, 2 remote open, 4 no data)
and the data.  Requests and responses are protobuf envelopes (request.proto):
    Request  { string service = 1; string method = 2; bytes payload = 3;
               int64 timeout_nano = 4; repeated KeyValue metadata = 5; }
    Response { Status status = 1; bytes payload = 2; }
    KeyValue { string key = 1; string value = 2; }
    Status   { int32 code = 1; string message = 2; }   (google.rpc.Status)
The payloads are Kata agent messages (kata-containers
src/libs/protocols/protos/agent.proto, health.proto, oci.proto; package
"grpc"), encoded here by hand.

In Kata the host (CID 2) connects to the agent listening on the guest's
(CID 3) port 1024; client stream ids are odd and count up from 1.

Captures (frame numbers are 1-based; tests/test_ttrpc.py relies on them):

ttrpc_agent.pcap, host 2:50000 -> guest 3:1024
   1 REQUEST, 2 RESPONSE (vsock handshake)
   3 Request  s1 /grpc.Health/Check, timeout 5 s
   4 Response s1 HealthCheckResponse{SERVING}
   5 Request  s3 /grpc.AgentService/CreateContainer, first 5 bytes (half a header)
   6          s3 continued: rest of the header and part of the data
   7          s3 end
   8 Response s3 (Empty)
   9 Request  s5 StartContainer + Request s7 ExecProcess (two PDUs in one packet)
  10 Response s7 + Response s5 (two PDUs, answered in the other order)
  11 Request  s9 StartContainer of an unknown container
  12 Response s9 status 13 (INTERNAL) "Invalid container id: c-missing"
  13 Request  s11 WaitProcess + the first 20 bytes of Request s13 SignalProcess
  14          s13 end
  15 Response s13 (Empty)
  16 Response s11 WaitProcessResponse{status 137}
  17 Request  s15 GetIPTables
  18-21 Response s15 GetIPTablesResponse, 200000 bytes of iptables-save text,
        over four RW packets (65536, 65536, 65536, rest)
  22 SHUTDOWN host -> guest (RCV|SEND), 23 RST guest -> host

ttrpc_tcp.pcap: the same ttrpc byte streams over TCP 10.0.0.2:50000 ->
  10.0.0.3:1024 (Ethernet, IPv4), frames numbered alike: 1 SYN, 2 SYN-ACK,
  3-21 the same payload packets, except that the big response is cut in
  60000-byte segments (IPv4 limit), still four packets 18-21; 22 FIN host,
  23 FIN guest.  TCP's desegmentation checks the dissector's desegment_offset
  and desegment_len without the vsock reassembly.

ttrpc_not_ttrpc.pcap, host 2:50001 -> guest 3:1024: nothing here is ttrpc
   1 REQUEST, 2 RESPONSE
   3 an HTTP request
   4 a ttrpc-shaped header of type 9
   5 a ttrpc-shaped header with flags 0x80
   6 "hi\\n" (3 bytes)
   7 a header announcing 5 MiB of data (more than ttrpc's 4 MiB)

ttrpc_other_port.pcap, host 2:50002 -> guest 3:2048 (for Decode As and the
  port preference)
   1 REQUEST, 2 RESPONSE
   3 Request s1 /grpc.Health/Version, 4 Response s1 VersionCheckResponse

ttrpc_midstream.pcap, host 2:50003 <-> guest 3:1024, capture started inside
  the connection (no handshake)
   1 Response s21 whose request is not in the capture
   2 Request s23 /grpc.AgentService/StatsContainer, 3 Response s23

ttrpc_streaming.pcap, host 2:50004 -> guest 3:1024: a streaming call
   1 REQUEST, 2 RESPONSE
   3 Request s1 /ttrpc.integration.streaming.Streaming/EchoStream, remote open
   4 Data s1 host -> guest EchoPayload{seq 1, msg "hello"}
   5 Data s1 guest -> host EchoPayload{seq 2, msg "hello"}
   6 Data s1 host -> guest, remote closed + no data
   7 Response s1 (OK)

ttrpc_bad.pcap, host 2:50005 -> guest 3:1024: damaged ttrpc
   1 REQUEST, 2 RESPONSE
   3 Request s1 whose data is not protobuf (a length past the end)
   4 Request s3 StartContainer + a header announcing 5 MiB
   5 Request s5 StartContainer + a PDU of type 7 (3 bytes of data)
   6 Response s1 whose status is a varint instead of a message

Usage: gen_ttrpc_captures.py [OUTPUT_DIR]
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_test_captures import (  # noqa: E402  (the path is set just above)
    write_captures, VsockConnection, inet_checksum,
    CID_GUEST, CID_HOST, OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN,
    SHUTDOWN_RCV, SHUTDOWN_SEND, SNAPLEN, START_TIME_US, STEP_US, pcap_bytes,
    virtio_frame)

AGENT_PORT = 1024
TCP_SEGMENT_MAX = 60000  # below the IPv4 limit of 65535 bytes per packet

# ttrpc
TYPE_REQUEST = 1
TYPE_RESPONSE = 2
TYPE_DATA = 3
FLAG_REMOTE_CLOSED = 1
FLAG_REMOTE_OPEN = 2
FLAG_NO_DATA = 4

# google.golang.org/grpc/codes
CODE_INTERNAL = 13

# --------------------------------------------------------------------------
# protobuf wire format
# --------------------------------------------------------------------------


def varint(value):
    value &= (1 << 64) - 1          # int64: two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_varint(number, value):
    """A VARINT field; proto3 leaves out zero."""
    return varint(number << 3 | 0) + varint(value) if value else b""


def pb_bytes(number, data):
    """A LEN field (bytes, string or message); proto3 leaves out empty ones."""
    if isinstance(data, str):
        data = data.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data if data else b""


def pb_message(number, data):
    """A message field, kept even when the message is empty."""
    return varint(number << 3 | 2) + varint(len(data)) + data


# --------------------------------------------------------------------------
# ttrpc
# --------------------------------------------------------------------------


def frame(stream_id, type_, data=b"", flags=0, length=None):
    if length is None:
        length = len(data)
    return struct.pack(">IIBB", length, stream_id, type_, flags) + data


def request(stream_id, service, method, payload=b"", timeout_nano=0,
            metadata=(), flags=0):
    data = (pb_bytes(1, service) + pb_bytes(2, method) + pb_bytes(3, payload)
            + pb_varint(4, timeout_nano))
    for key, value in metadata:
        data += pb_message(5, pb_bytes(1, key) + pb_bytes(2, value))
    return frame(stream_id, TYPE_REQUEST, data, flags)


def response(stream_id, payload=b"", code=0, message=""):
    # ttrpc's Go server always sends a Status, empty when the code is OK.
    status = pb_varint(1, code) + pb_bytes(2, message)
    return frame(stream_id, TYPE_RESPONSE, pb_message(1, status) + pb_bytes(2, payload))


# --------------------------------------------------------------------------
# Kata agent messages (package grpc)
# --------------------------------------------------------------------------

CONTAINER_ID = "7d0b5ad2e4f24c8f9b3a61d5c0e8f1a2b3c4d5e6f708192a3b4c5d6e7f809102"
AGENT = "grpc.AgentService"
HEALTH = "grpc.Health"
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOSTNAME=kata"]


def oci_process(args):
    """oci.proto Process: User = 3, Args = 4, Env = 5, Cwd = 6."""
    user = pb_varint(1, 0) + pb_varint(2, 0)
    return (pb_message(3, user) + b"".join(pb_bytes(4, a) for a in args)
            + b"".join(pb_bytes(5, e) for e in ENV) + pb_bytes(6, "/"))


def create_container_request():
    """CreateContainerRequest{container_id 1, exec_id 2, OCI 6: Spec{Version 1,
    Process 2, Root 3, Hostname 4}}."""
    root = pb_bytes(1, "/run/kata-containers/shared/containers/%s/rootfs" % CONTAINER_ID)
    spec = (pb_bytes(1, "1.0.2-dev") + pb_message(2, oci_process(["/bin/sh"]))
            + pb_message(3, root) + pb_bytes(4, "kata"))
    return pb_bytes(1, CONTAINER_ID) + pb_bytes(2, CONTAINER_ID) + pb_message(6, spec)


def container_request(container_id=CONTAINER_ID):
    """StartContainerRequest, StatsContainerRequest: {container_id 1}."""
    return pb_bytes(1, container_id)


def exec_process_request():
    """ExecProcessRequest{container_id 1, exec_id 2, process 4}."""
    return (pb_bytes(1, CONTAINER_ID) + pb_bytes(2, "exec-1")
            + pb_message(4, oci_process(["ls", "-l", "/"])))


def wait_process_request():
    """WaitProcessRequest{container_id 1, exec_id 2}."""
    return pb_bytes(1, CONTAINER_ID) + pb_bytes(2, "exec-1")


def signal_process_request():
    """SignalProcessRequest{container_id 1, exec_id 2, signal 3}: SIGKILL."""
    return pb_bytes(1, CONTAINER_ID) + pb_bytes(2, "exec-1") + pb_varint(3, 9)


def iptables_save(size):
    """size bytes of iptables-save output."""
    lines = ["# Generated by iptables-save v1.8.9 on Tue Nov 14 22:13:20 2023",
             "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    text = "\n".join(lines) + "\n"
    rule = 0
    while len(text) < size:
        text += "-A INPUT -s 10.%d.%d.0/24 -p tcp -m tcp --dport %d -j ACCEPT\n" % (
            rule // 256 % 256, rule % 256, 1024 + rule % 60000)
        rule += 1
    return text[:size - 7].encode() + b"COMMIT\n"


BIG_DATA_LEN = 200000

# Kata agent's tracing context, as the runtime's ttrpc client passes it.
TRACEPARENT = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def agent_session():
    """(direction, payload) pairs after the handshake, direction "c" for the
    host (client) and "s" for the agent; big payloads are cut later."""
    create = request(3, AGENT, "CreateContainer", create_container_request(),
                     metadata=[TRACEPARENT])
    signal = request(13, AGENT, "SignalProcess", signal_process_request())
    return [
        ("c", request(1, HEALTH, "Check", timeout_nano=5_000_000_000)),
        ("s", response(1, pb_varint(1, 1))),                       # SERVING
        ("c", create[:5]),
        ("c", create[5:60]),
        ("c", create[60:]),
        ("s", response(3)),
        ("c", request(5, AGENT, "StartContainer", container_request())
         + request(7, AGENT, "ExecProcess", exec_process_request())),
        ("s", response(7) + response(5)),
        ("c", request(9, AGENT, "StartContainer", container_request("c-missing"))),
        ("s", response(9, code=CODE_INTERNAL, message="Invalid container id: c-missing")),
        ("c", request(11, AGENT, "WaitProcess", wait_process_request()) + signal[:20]),
        ("c", signal[20:]),
        ("s", response(13)),
        ("s", response(11, pb_varint(1, 137))),
        ("c", request(15, AGENT, "GetIPTables")),
        ("s", response(15, pb_bytes(1, iptables_save(BIG_DATA_LEN)))),
    ]


# --------------------------------------------------------------------------
# vsock connections
# --------------------------------------------------------------------------


HOST_CID = CID_HOST
GUEST_CID = CID_GUEST


def connection(host_port, guest_port=AGENT_PORT, handshake=True):
    conn = VsockConnection((HOST_CID, host_port), (GUEST_CID, guest_port))
    if handshake:
        conn.handshake()
    return conn


def agent_capture():
    conn = connection(50000)
    for who, payload in agent_session():
        conn.send(who, payload)
    conn.close()
    return conn.frames


def not_ttrpc_capture():
    conn = connection(50001)
    conn.send("c", b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
    conn.send("s", frame(1, 9, b"\x0a\x02hi\x12\x02yo\x18\x01\x20\x02\x28\x03"))
    conn.send("c", frame(1, TYPE_REQUEST, b"\x0a\x04grpc", flags=0x80))
    conn.send("c", b"hi\n")
    conn.send("c", frame(1, TYPE_REQUEST, b"\x0a\x04grpc", length=5 << 20))
    return conn.frames


def other_port_capture():
    conn = connection(50002, guest_port=2048)
    conn.send("c", request(1, HEALTH, "Version", timeout_nano=5_000_000_000))
    conn.send("s", response(1, pb_bytes(1, "0.0.1") + pb_bytes(2, "3.2.0")))
    return conn.frames


def midstream_capture():
    conn = connection(50003, handshake=False)
    conn.send("s", response(21))
    conn.send("c", request(23, AGENT, "StatsContainer", container_request()))
    # StatsContainerResponse{cgroup_stats 1: {pids_stats 3: {current 1, limit 2}}}
    conn.send("s", response(23, pb_message(1, pb_message(3, pb_varint(1, 3) + pb_varint(2, 1024)))))
    return conn.frames


def echo_payload(seq, msg):
    """EchoPayload{seq 1, msg 2} of ttrpc's integration/streaming/test.proto."""
    return pb_varint(1, seq) + pb_bytes(2, msg)


def streaming_capture():
    conn = connection(50004)
    conn.send("c", request(1, "ttrpc.integration.streaming.Streaming", "EchoStream",
                           flags=FLAG_REMOTE_OPEN))
    conn.send("c", frame(1, TYPE_DATA, echo_payload(1, "hello")))
    conn.send("s", frame(1, TYPE_DATA, echo_payload(2, "hello")))
    conn.send("c", frame(1, TYPE_DATA, flags=FLAG_REMOTE_CLOSED | FLAG_NO_DATA))
    conn.send("s", response(1))
    return conn.frames


def bad_capture():
    conn = connection(50005)
    conn.send("c", frame(1, TYPE_REQUEST, pb_bytes(1, AGENT) + b"\x12\x40Start"))
    conn.send("c", request(3, AGENT, "StartContainer", container_request())
              + frame(3, TYPE_REQUEST, b"", length=5 << 20))
    conn.send("c", request(5, AGENT, "StartContainer", container_request())
              + frame(5, 7, b"abc"))
    conn.send("s", frame(1, TYPE_RESPONSE, pb_varint(1, 5)))
    return conn.frames


# --------------------------------------------------------------------------
# The same ttrpc session over TCP
# --------------------------------------------------------------------------

LINKTYPE_ETHERNET = 1
TCP_HOST = (bytes([10, 0, 0, 2]), 50000, b"\x02\x00\x00\x00\x00\x02")
TCP_GUEST = (bytes([10, 0, 0, 3]), AGENT_PORT, b"\x02\x00\x00\x00\x00\x03")
TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_FIN = 0x02, 0x04, 0x08, 0x10, 0x01


def tcp_packet(src, dst, seq, ack, flags, payload=b""):
    (src_ip, src_port, src_mac), (dst_ip, dst_port, dst_mac) = src, dst
    tcp = struct.pack("!HHIIBBHHH", src_port, dst_port, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", inet_checksum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                     src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp + payload


def tcp_capture():
    ends = {"c": TCP_HOST, "s": TCP_GUEST}
    seq = {"c": 1000, "s": 5000}
    frames = [tcp_packet(TCP_HOST, TCP_GUEST, seq["c"], 0, TCP_SYN),
              tcp_packet(TCP_GUEST, TCP_HOST, seq["s"], seq["c"] + 1, TCP_SYN | TCP_ACK)]
    seq["c"] += 1
    seq["s"] += 1
    for who, payload in agent_session():
        peer = "s" if who == "c" else "c"
        for start in range(0, len(payload), TCP_SEGMENT_MAX):
            chunk = payload[start:start + TCP_SEGMENT_MAX]
            frames.append(tcp_packet(ends[who], ends[peer], seq[who], seq[peer], TCP_PSH | TCP_ACK, chunk))
            seq[who] += len(chunk)
    frames.append(tcp_packet(TCP_HOST, TCP_GUEST, seq["c"], seq["s"], TCP_FIN | TCP_ACK))
    frames.append(tcp_packet(TCP_GUEST, TCP_HOST, seq["s"], seq["c"] + 1, TCP_FIN | TCP_ACK))
    return frames


def pcap_ethernet(frames):
    """Classic pcap like gen_test_captures.pcap_bytes(), Ethernet link type."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    for i, data in enumerate(frames):
        t = START_TIME_US + i * STEP_US
        out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(data), len(data)))
        out.append(data)
    return b"".join(out)


# --------------------------------------------------------------------------


def captures():
    """file name -> pcap bytes."""
    vsock = {
        "ttrpc_agent.pcap": agent_capture(),
        "ttrpc_not_ttrpc.pcap": not_ttrpc_capture(),
        "ttrpc_other_port.pcap": other_port_capture(),
        "ttrpc_midstream.pcap": midstream_capture(),
        "ttrpc_streaming.pcap": streaming_capture(),
        "ttrpc_bad.pcap": bad_capture(),
    }
    caps = {name: pcap_bytes(frames) for name, frames in vsock.items()}
    caps["ttrpc_tcp.pcap"] = pcap_ethernet(tcp_capture())
    return caps


def main(argv):
    return write_captures(argv, captures)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
