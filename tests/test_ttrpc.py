"""ttrpc (Kata Containers agent protocol) over vsock port 1024: frames, envelopes,
request/response matching, the hand-off to protobuf, and the port preference.

Captures: test-captures/synthetic/ttrpc_*.pcap from tools/gen_ttrpc_captures.py,
whose docstring lists every frame.

Tests marked `needs_vsock_reassembly` need the vsock transport's stream
reassembly (vsock-reassembly.c): ttrpc PDUs that span RW packets. They are
skipped when the plugin has no `vsock.reassembled_in` field, unless
VSOCK_EXPECT_REASSEMBLY=1 is set (then they fail instead). The same cases run
over TCP (ttrpc_tcp.pcap, Decode As) without that dependency: TCP honours the
same desegmentation contract.
"""

import os
import subprocess

import pytest

AGENT = "synthetic/ttrpc_agent.pcap"
TCP = "synthetic/ttrpc_tcp.pcap"
NOT_TTRPC = "synthetic/ttrpc_not_ttrpc.pcap"
OTHER_PORT = "synthetic/ttrpc_other_port.pcap"
MIDSTREAM = "synthetic/ttrpc_midstream.pcap"
STREAMING = "synthetic/ttrpc_streaming.pcap"
BAD = "synthetic/ttrpc_bad.pcap"

TCP_AS_TTRPC = ["-d", "tcp.port==1024,ttrpc"]

REQUEST, RESPONSE, DATA = "1", "2", "3"
AGENT_SERVICE = "grpc.AgentService"
HEALTH = "grpc.Health"

CALL_FIELDS = ["frame.number", "ttrpc.stream_id", "ttrpc.type", "ttrpc.service", "ttrpc.method",
               "ttrpc.response_in", "ttrpc.response_to"]

# Every frame of ttrpc_agent.pcap (and ttrpc_tcp.pcap) that carries a ttrpc PDU,
# with reassembly: (frame, stream ids, types, services, methods, response_in, response_to).
AGENT_CALLS = [
    ["3", "1", REQUEST, HEALTH, "Check", "4", ""],
    ["4", "1", RESPONSE, HEALTH, "Check", "", "3"],
    ["7", "3", REQUEST, AGENT_SERVICE, "CreateContainer", "8", ""],
    ["8", "3", RESPONSE, AGENT_SERVICE, "CreateContainer", "", "7"],
    ["9", "5|7", "1|1", f"{AGENT_SERVICE}|{AGENT_SERVICE}", "StartContainer|ExecProcess", "10|10", ""],
    ["10", "7|5", "2|2", f"{AGENT_SERVICE}|{AGENT_SERVICE}", "ExecProcess|StartContainer", "", "9|9"],
    ["11", "9", REQUEST, AGENT_SERVICE, "StartContainer", "12", ""],
    ["12", "9", RESPONSE, AGENT_SERVICE, "StartContainer", "", "11"],
    ["13", "11", REQUEST, AGENT_SERVICE, "WaitProcess", "16", ""],
    ["14", "13", REQUEST, AGENT_SERVICE, "SignalProcess", "15", ""],
    ["15", "13", RESPONSE, AGENT_SERVICE, "SignalProcess", "", "14"],
    ["16", "11", RESPONSE, AGENT_SERVICE, "WaitProcess", "", "13"],
    ["17", "15", REQUEST, AGENT_SERVICE, "GetIPTables", "21", ""],
    ["21", "15", RESPONSE, AGENT_SERVICE, "GetIPTables", "", "17"],
]

# The calls whose PDUs each fit in one RW packet.
UNSPLIT_FRAMES = {"3", "4", "9", "10", "11", "12", "16"}

AGENT_INFO = {
    3: "Request /grpc.Health/Check (stream 1)",
    4: "Response /grpc.Health/Check (stream 1) status 0 (OK)",
    9: "Request /grpc.AgentService/StartContainer (stream 5), Request /grpc.AgentService/ExecProcess (stream 7)",
    10: "Response /grpc.AgentService/ExecProcess (stream 7) status 0 (OK), "
        "Response /grpc.AgentService/StartContainer (stream 5) status 0 (OK)",
    11: "Request /grpc.AgentService/StartContainer (stream 9)",
    12: "Response /grpc.AgentService/StartContainer (stream 9) status 13 (INTERNAL)",
    16: "Response /grpc.AgentService/WaitProcess (stream 11) status 0 (OK)",
    17: "Request /grpc.AgentService/GetIPTables (stream 15)",
}
# With reassembly; the transport may append its own segment note.
AGENT_INFO_REASSEMBLED = {
    7: "Request /grpc.AgentService/CreateContainer (stream 3)",
    8: "Response /grpc.AgentService/CreateContainer (stream 3) status 0 (OK)",
    13: "Request /grpc.AgentService/WaitProcess (stream 11)",
    14: "Request /grpc.AgentService/SignalProcess (stream 13)",
    15: "Response /grpc.AgentService/SignalProcess (stream 13) status 0 (OK)",
    21: "Response /grpc.AgentService/GetIPTables (stream 15) status 0 (OK)",
}

# Response s15: Status (2 bytes) + payload tag, 3-byte length, and
# GetIPTablesResponse{data: 200000 bytes} (1 + 3 + 200000 bytes).
BIG_RESPONSE_LEN = "200010"

# A minimal slice of Kata's agent.proto / health.proto (package grpc) and of
# ttrpc's streaming test.proto, for the typed hand-off to protobuf.
PROTO_FILES = {
    "agent.proto": """
syntax = "proto3";
package grpc;
message Empty {}
message Spec { string Version = 1; string Hostname = 4; }
message CreateContainerRequest { string container_id = 1; string exec_id = 2; Spec OCI = 6; }
message StartContainerRequest { string container_id = 1; }
message CheckRequest { string service = 1; }
message HealthCheckResponse {
    enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; }
    ServingStatus status = 1;
}
service AgentService {
    rpc CreateContainer(CreateContainerRequest) returns (Empty);
    rpc StartContainer(StartContainerRequest) returns (Empty);
}
service Health { rpc Check(CheckRequest) returns (HealthCheckResponse); }
""",
    "streaming.proto": """
syntax = "proto3";
package ttrpc.integration.streaming;
message EchoPayload { uint32 seq = 1; string msg = 2; }
message EchoRequest { string msg = 1; }
service Streaming { rpc EchoStream(stream EchoPayload) returns (stream EchoPayload); }
""",
}


@pytest.fixture(scope="module")
def needs_vsock_reassembly(tshark):
    """Skips unless the vsock transport reassembles PDUs across RW packets."""
    if "\tvsock.reassembled_in\t" not in tshark.text(["-G", "fields"]):
        if os.environ.get("VSOCK_EXPECT_REASSEMBLY") == "1":
            pytest.fail("VSOCK_EXPECT_REASSEMBLY=1 but the plugin has no vsock.reassembled_in field")
        pytest.skip("the vsock transport has no stream reassembly yet")


@pytest.fixture(scope="module")
def proto_args(tshark):
    """Options that load PROTO_FILES into Wireshark's protobuf dissector."""
    folder = os.path.join(tshark.scratch, "protos")
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    for name, text in PROTO_FILES.items():
        tshark.scratch_file(os.path.join("protos", name), text)
    return ["-o", f'uat:protobuf_search_paths:"{folder}","TRUE"']


def calls(tshark, capture, extra=(), two_pass=True):
    return tshark.fields(tshark.capture(capture), CALL_FIELDS, "ttrpc",
                         extra=list(extra) + (["-2"] if two_pass else []))


def info(tshark, capture, extra=()):
    return dict(enumerate(tshark.column(tshark.capture(capture), "_ws.col.Info", extra=extra), start=1))


def experts(tshark, capture, expert, extra=()):
    return tshark.frames(tshark.capture(capture), expert, extra=list(extra) + ["-2"])


# ---- registration ----

def test_fields_are_registered(tshark):
    """The ttrpc fields exist with their types."""
    fields = {line.split("\t")[2]: line.split("\t")[3]
              for line in tshark.text(["-G", "fields"]).splitlines()
              if line.startswith("F\t") and line.split("\t")[4] == "ttrpc"}
    assert fields == {
        "ttrpc.length": "FT_UINT32", "ttrpc.stream_id": "FT_UINT32", "ttrpc.type": "FT_UINT8",
        "ttrpc.flags": "FT_UINT8", "ttrpc.flags.remote_closed": "FT_BOOLEAN",
        "ttrpc.flags.remote_open": "FT_BOOLEAN", "ttrpc.flags.no_data": "FT_BOOLEAN",
        "ttrpc.request": "FT_NONE", "ttrpc.response": "FT_NONE",
        "ttrpc.service": "FT_STRING", "ttrpc.method": "FT_STRING", "ttrpc.payload": "FT_BYTES",
        "ttrpc.timeout_nano": "FT_INT64", "ttrpc.metadata": "FT_NONE",
        "ttrpc.metadata.key": "FT_STRING", "ttrpc.metadata.value": "FT_STRING",
        "ttrpc.status": "FT_NONE", "ttrpc.status.code": "FT_INT32", "ttrpc.status.message": "FT_STRING",
        "ttrpc.status.details": "FT_BYTES", "ttrpc.unknown_field": "FT_BYTES",
        "ttrpc.response_in": "FT_FRAMENUM", "ttrpc.response_to": "FT_FRAMENUM",
        "ttrpc.time": "FT_RELATIVE_TIME", "ttrpc.fragment": "FT_BYTES",
        # expert infos
        "ttrpc.header.bad": "FT_NONE", "ttrpc.type.unknown": "FT_NONE", "ttrpc.flags.unknown": "FT_NONE",
        "ttrpc.pdu.incomplete": "FT_NONE", "ttrpc.protobuf.bad": "FT_NONE", "ttrpc.protobuf.wire_type": "FT_NONE",
        "ttrpc.response.no_request": "FT_NONE", "ttrpc.status.error": "FT_NONE",
    }


def test_protocol_and_decode_as_entry(tshark):
    """ttrpc is a protocol, registered on vsock port 1024."""
    protocols = [line.split("\t")[:3] for line in tshark.text(["-G", "protocols"]).splitlines()]
    assert ["ttrpc (containerd lightweight RPC)", "ttrpc", "ttrpc"] in protocols
    decodes = tshark.text(["-G", "decodes"]).splitlines()
    assert "vsock.port\t1024\tttrpc" in decodes


# ---- calls that fit in one packet (no reassembly needed) ----

def test_unsplit_calls(tshark):
    """Stream ids, types, names and request/response links of single-packet PDUs."""
    rows = [row for row in calls(tshark, AGENT) if row[0] in UNSPLIT_FRAMES]
    expected = [row for row in AGENT_CALLS if row[0] in UNSPLIT_FRAMES]
    assert rows == expected


def test_info_column(tshark):
    """Info names the method, stream and status; two PDUs in a packet are both listed."""
    got = info(tshark, AGENT)
    assert {n: got[n] for n in AGENT_INFO} == AGENT_INFO
    assert tshark.column(tshark.capture(AGENT), "_ws.col.Protocol", "frame.number == 3") == ["ttrpc"]


def test_two_pdus_in_one_packet(tshark):
    """Frame 9 carries two requests, frame 10 their responses in the other order."""
    capture = tshark.capture(AGENT)
    rows = tshark.fields(capture, ["ttrpc.stream_id", "ttrpc.length", "ttrpc.response_in", "ttrpc.response_to"],
                         "(frame.number == 9 || frame.number == 10)", extra=["-2"])
    assert rows == [["5|7", "103|209", "10|10", ""], ["7|5", "2|2", "", "9|9"]]
    # Each PDU has its own tree.
    tree = tshark.text(["-r", capture, "-Y", "frame.number == 9", "-V"])
    assert tree.count("ttrpc (containerd lightweight RPC), Request, Stream") == 2


def test_request_fields(tshark):
    """Timeout and metadata of the Request envelope."""
    capture = tshark.capture(AGENT)
    assert tshark.fields(capture, ["ttrpc.timeout_nano", "ttrpc.flags", "ttrpc.length"], "frame.number == 3") == [
        ["5000000000", "0x00", "26"]]


def test_response_time(tshark):
    """ttrpc.time is the time since the request (frames are 1 ms apart)."""
    capture = tshark.capture(AGENT)
    assert tshark.column(capture, "ttrpc.time", "(frame.number == 4 || frame.number == 12)") == ["0.001000000", "0.001000000"]
    assert tshark.column(capture, "ttrpc.time", "frame.number == 16") == ["0.003000000"]


def test_error_status(tshark):
    """A non-zero status: code, message, expert info; OK shows its implied code 0."""
    capture = tshark.capture(AGENT)
    assert tshark.fields(capture, ["ttrpc.status.code", "ttrpc.status.message"], "frame.number == 12") == [
        ["13", "Invalid container id: c-missing"]]
    assert experts(tshark, AGENT, "ttrpc.status.error") == [12]
    # OK is sent as an empty Status message.
    assert tshark.column(capture, "ttrpc.status.code", "frame.number == 4") == ["0"]
    assert tshark.frames(capture, "ttrpc.status.code == 13") == [12]


def test_payload_goes_to_protobuf(tshark):
    """Without .proto files the inner message is shown as protobuf wire format."""
    capture = tshark.capture(AGENT)
    # StartContainerRequest{container_id = 1}; HealthCheckResponse{status = 1}.
    assert tshark.column(capture, "protobuf.field.number", "(frame.number == 4 || frame.number == 11)") == ["1", "1"]
    assert tshark.column(capture, "ttrpc.payload", "frame.number == 4") == ["0801"]
    # GetIPTablesRequest is empty: no payload, nothing for protobuf.
    assert tshark.frames(capture, "protobuf && frame.number == 17") == []


def test_protobuf_types_from_proto_files(tshark, proto_args):
    """With .proto files, protobuf finds the message types from /service/method and the direction."""
    capture = tshark.capture(AGENT)
    assert tshark.fields(capture, ["frame.number", "protobuf.message.name", "protobuf.field.name"],
                         "(frame.number == 4 || frame.number == 11)", extra=proto_args) == [
        ["4", "grpc.HealthCheckResponse", "status"],
        ["11", "grpc.StartContainerRequest", "container_id"],
    ]
    # protobuf does not append to our Info column.
    assert info(tshark, AGENT, proto_args)[4] == AGENT_INFO[4]


# ---- PDUs across packets: the vsock transport's reassembly ----

def test_agent_calls_with_reassembly(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly] Every call of the capture, as one PDU each, linked both ways."""
    assert calls(tshark, AGENT) == AGENT_CALLS


def test_split_request_is_one_pdu(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly] CreateContainer over frames 5-7 (header cut after 5 bytes) is dissected once, in frame 7."""
    capture = tshark.capture(AGENT)
    assert tshark.frames(capture, 'ttrpc.method == "CreateContainer"', extra=["-2"]) == [7, 8]
    assert tshark.frames(capture, "ttrpc.type == 1 && (frame.number >= 5 && frame.number <= 7)", extra=["-2"]) == [7]
    assert tshark.fields(capture, ["ttrpc.length", "ttrpc.metadata.key", "ttrpc.metadata.value",
                                   "ttrpc.response_in"], "frame.number == 7", extra=["-2"]) == [
        ["475", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "8"]]
    assert tshark.column(capture, "vsock.reassembled_in", "(frame.number == 5 || frame.number == 6)", extra=["-2"]) == ["7", "7"]


def test_pdu_boundary_inside_packet(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly] Frame 13 ends one PDU and starts the next, which frame 14 completes."""
    capture = tshark.capture(AGENT)
    rows = tshark.fields(capture, ["ttrpc.stream_id", "ttrpc.method"], "(frame.number == 13 || frame.number == 14)", extra=["-2"])
    assert rows == [["11", "WaitProcess"], ["13", "SignalProcess"]]


def test_big_response_is_reassembled(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly] The 200 KB response over four 64 KiB RW packets is one PDU in frame 21."""
    capture = tshark.capture(AGENT)
    assert tshark.fields(capture, ["ttrpc.stream_id", "ttrpc.length", "ttrpc.response_to"],
                         "ttrpc.stream_id == 15 && ttrpc.type == 2", extra=["-2"]) == [
        ["15", BIG_RESPONSE_LEN, "17"]]
    assert tshark.frames(capture, "ttrpc.stream_id == 15 && ttrpc.type == 2", extra=["-2"]) == [21]
    assert tshark.column(capture, "vsock.reassembled_in", "(frame.number >= 18 && frame.number <= 20)", extra=["-2"]) == ["21"] * 3


def test_info_column_with_reassembly(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly] Info of the PDUs that span packets."""
    got = info(tshark, AGENT)
    for number, text in AGENT_INFO_REASSEMBLED.items():
        assert got[number].startswith(text), (number, got[number])


def test_without_reassembly_pdus_are_shown_incomplete(tshark, needs_vsock_reassembly):
    """[needs vsock reassembly, for its preference] With reassembly off, a PDU that
    starts in a packet is shown as incomplete, and its continuation is not ttrpc."""
    off = ["-o", "vsock.desegment:FALSE"]
    capture = tshark.capture(AGENT)
    assert experts(tshark, AGENT, "ttrpc.pdu.incomplete", off) == [13, 18]
    assert tshark.frames(capture, "ttrpc && (frame.number >= 5 && frame.number <= 7)", extra=off) == []
    assert tshark.fields(capture, ["ttrpc.stream_id", "ttrpc.length"], "frame.number == 18", extra=off) == [
        ["15", BIG_RESPONSE_LEN]]


# ---- the same over TCP: the desegmentation contract without the vsock reassembly ----

def test_tcp_calls(tshark):
    """Over TCP (Decode As), TCP reassembles exactly what the dissector asks for."""
    assert calls(tshark, TCP, TCP_AS_TTRPC) == AGENT_CALLS


def test_tcp_reassembled_frames(tshark):
    """Split header (5-7), PDU boundary inside a segment (13-14), 200 KB response (18-21)."""
    capture = tshark.capture(TCP)
    rows = tshark.fields(capture, ["frame.number", "tcp.reassembled_in"], "tcp.reassembled_in",
                         extra=TCP_AS_TTRPC + ["-2"])
    assert rows == [["5", "7"], ["6", "7"], ["13", "14"], ["18", "21"], ["19", "21"], ["20", "21"]]
    assert tshark.fields(capture, ["ttrpc.length", "ttrpc.response_to"], "frame.number == 21",
                         extra=TCP_AS_TTRPC) == [[BIG_RESPONSE_LEN, "17"]]


def test_tcp_without_desegmentation(tshark):
    """With TCP desegmentation off, partial PDUs are flagged, continuations are left alone."""
    off = TCP_AS_TTRPC + ["-o", "tcp.desegment_tcp_streams:FALSE"]
    assert experts(tshark, TCP, "ttrpc.pdu.incomplete", off) == [13, 18]
    capture = tshark.capture(TCP)
    # Frame 5 holds half a header: not claimed without reassembly.
    assert tshark.frames(capture, "ttrpc && (frame.number >= 5 && frame.number <= 7)", extra=off) == []
    assert tshark.column(capture, "_ws.col.Info", "frame.number == 13", extra=off) == [
        "Request /grpc.AgentService/WaitProcess (stream 11), [Request (stream 13), 20 of 122 bytes]"]


def test_passes_agree(tshark):
    """The second pass shows what the first stored (response links of responses, names)."""
    fields = CALL_FIELDS[:5] + ["ttrpc.response_to", "ttrpc.time"]
    capture = tshark.capture(TCP)
    one = tshark.fields(capture, fields, "ttrpc", extra=TCP_AS_TTRPC)
    two = tshark.fields(capture, fields, "ttrpc", extra=TCP_AS_TTRPC + ["-2"])
    assert one == two


# ---- not ttrpc, other ports ----

def test_other_payload_on_port_1024_is_not_ttrpc(tshark):
    """HTTP, a header of type 9, unknown flags, 3 bytes, 5 MiB length: all left to others."""
    capture = tshark.capture(NOT_TTRPC)
    assert tshark.frames(capture, "ttrpc") == []
    assert tshark.frames(capture, "ttrpc", extra=["-o", "vsock.try_heuristic_first:FALSE"]) == []
    # The HTTP request may be found by the HTTP heuristic; the rest is data.
    assert tshark.frames(capture, "data || http") == [3, 4, 5, 6, 7]
    assert tshark.frames(capture, "data && frame.number >= 4") == [4, 5, 6, 7]


def test_decode_as_on_another_port(tshark):
    """Port 2048 is not ttrpc by default; Decode As makes it so."""
    capture = tshark.capture(OTHER_PORT)
    assert tshark.frames(capture, "ttrpc") == []
    rows = tshark.fields(capture, CALL_FIELDS, "ttrpc", extra=["-d", "vsock.port==2048,ttrpc", "-2"])
    assert rows == [["3", "1", REQUEST, HEALTH, "Version", "4", ""],
                    ["4", "1", RESPONSE, HEALTH, "Version", "", "3"]]


def test_port_preference(tshark):
    """The ports come from the preference ttrpc.vsock.port."""
    capture = tshark.capture(OTHER_PORT)
    assert tshark.frames(capture, "ttrpc", extra=["-o", "ttrpc.vsock.port:2048"]) == [3, 4]
    assert tshark.frames(capture, "ttrpc", extra=["-o", "ttrpc.vsock.port:1024,2048"]) == [3, 4]


def test_decode_as_and_disabling_turn_it_off(tshark):
    """Decode As another protocol, or disabling ttrpc, leaves port 1024 to others."""
    capture = tshark.capture(AGENT)
    assert tshark.frames(capture, "ttrpc", extra=["-d", "vsock.port==1024,data"]) == []
    assert tshark.frames(capture, "ttrpc", extra=["--disable-protocol", "ttrpc"]) == []


# ---- analysis and damage ----

def test_response_without_request(tshark):
    """A capture started inside the connection: the first response has no request."""
    capture = tshark.capture(MIDSTREAM)
    assert experts(tshark, MIDSTREAM, "ttrpc.response.no_request") == [1]
    assert calls(tshark, MIDSTREAM) == [
        ["1", "21", RESPONSE, "", "", "", ""],
        ["2", "23", REQUEST, AGENT_SERVICE, "StatsContainer", "3", ""],
        ["3", "23", RESPONSE, AGENT_SERVICE, "StatsContainer", "", "2"],
    ]
    assert info(tshark, MIDSTREAM)[1] == "Response (stream 21) status 0 (OK)"


def test_streaming_call(tshark):
    """Data messages carry the method of their stream; flags are decoded."""
    capture = tshark.capture(STREAMING)
    rows = tshark.fields(capture, ["frame.number", "ttrpc.type", "ttrpc.method", "ttrpc.flags",
                                   "ttrpc.flags.remote_closed", "ttrpc.flags.remote_open",
                                   "ttrpc.flags.no_data", "ttrpc.length"], "ttrpc", extra=["-2"])
    assert rows == [
        ["3", REQUEST, "EchoStream", "0x02", "0", "1", "0", "51"],
        ["4", DATA, "EchoStream", "0x00", "0", "0", "0", "9"],
        ["5", DATA, "EchoStream", "0x00", "0", "0", "0", "9"],
        ["6", DATA, "EchoStream", "0x05", "1", "0", "1", "0"],
        ["7", RESPONSE, "EchoStream", "0x00", "0", "0", "0", "2"],
    ]
    assert info(tshark, STREAMING)[4] == "Data /ttrpc.integration.streaming.Streaming/EchoStream (stream 1)"


def test_streaming_data_types_follow_direction(tshark, proto_args):
    """Data from the client is the method's input, data from the server its output."""
    capture = tshark.capture(STREAMING)
    rows = tshark.fields(capture, ["frame.number", "protobuf.message.name", "protobuf.field.name"],
                         "protobuf", extra=proto_args)
    assert rows == [["4", "ttrpc.integration.streaming.EchoPayload", "seq|msg"],
                    ["5", "ttrpc.integration.streaming.EchoPayload", "seq|msg"]]
    two = tshark.text(["-r", capture, "-Y", "(frame.number == 4 || frame.number == 5)", "-V"] + proto_args)
    assert "EchoStream,request" in two.split("Frame 5:")[0]
    assert "EchoStream,response" in two.split("Frame 5:")[1]


def test_damaged_ttrpc(tshark):
    """Bad protobuf, a bad header after a good PDU, an unknown type, a wrong wire type."""
    assert experts(tshark, BAD, "ttrpc.protobuf.bad") == [3]
    assert experts(tshark, BAD, "ttrpc.header.bad") == [4]
    assert experts(tshark, BAD, "ttrpc.type.unknown") == [5]
    assert experts(tshark, BAD, "ttrpc.protobuf.wire_type") == [6]
    got = info(tshark, BAD)
    assert got[4] == "Request /grpc.AgentService/StartContainer (stream 3), [Malformed header]"
    assert got[5] == "Request /grpc.AgentService/StartContainer (stream 5), Type 7 (stream 5)"
    # The response matches the request whose method could not be read.
    assert tshark.column(tshark.capture(BAD), "ttrpc.response_to", "frame.number == 6", extra=["-2"]) == ["3"]
    # Malformed only where our PI_MALFORMED expert infos say so: no exception.
    assert tshark.frames(tshark.capture(BAD), "_ws.malformed") == [3, 4]


def test_captures_are_up_to_date(tshark, tmp_path):
    """The committed captures are what tools/gen_ttrpc_captures.py writes."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["python3", os.path.join(repo, "tools", "gen_ttrpc_captures.py"), str(tmp_path)],
                   check=True, stdout=subprocess.DEVNULL)
    for name in sorted(os.listdir(tmp_path)):
        with open(tmp_path / name, "rb") as new, open(os.path.join(repo, "test-captures", "synthetic", name),
                                                        "rb") as old:
            assert new.read() == old.read(), name
