"""Application protocols over vsock: AWS Nitro Enclaves, systemd notifications
(sd_notify), the QEMU guest agent (qga) and the Kata agent's log and console.

Captures: test-captures/synthetic/{nitro,sdnotify,qemuga,kata}_*.pcap from
tools/gen_app_captures.py; test-captures/synthetic/README.md lists every frame.
Each check runs on one pass and on two (-2), where the tree must be the same.
"""

import os
import sys

import pytest

from vsocktest import REPO

PASSES = [[], ["-2"]]


def cap(name):
    return "synthetic/%s.pcap" % name


def rows(tshark, name, fields, display_filter, extra=()):
    return tshark.fields(tshark.capture(cap(name)), ["frame.number"] + fields, display_filter, extra=list(extra))


def info(tshark, name, display_filter, extra=()):
    return {int(r[0]): r[1] for r in rows(tshark, name, ["_ws.col.Info"], display_filter, extra)}


# Every expert info of the four protocols.
EXPERTS = {
    "nitro.heartbeat.bad", "nitro.heartbeat.length", "nitro.heartbeat.empty",
    "sd_notify.assignment.bad", "sd_notify.value.not_number", "sd_notify.line.continued",
    "sd_notify.line.too_long",
    "qga.json.invalid", "qga.incomplete", "qga.too_long", "qga.unknown", "qga.reply.no_command",
    "qga.command.no_reply", "qga.error",
    "kata.log.incomplete", "kata.log.not_json",
}


def experts(tshark, name, prefix, extra=()):
    """Frame number -> the expert infos of the protocol (names starting with prefix)."""
    per_packet = tshark.pdml_field_names(tshark.capture(cap(name)), list(extra))
    found = {}
    for number, names in enumerate(per_packet, start=1):
        ours = {n for n in names & EXPERTS if n.startswith(prefix)}
        if ours:
            found[number] = ours
    return found


def test_every_expert_is_registered(tshark):
    registered = {line.split("\t")[2] for line in tshark.text(["-G", "fields"]).splitlines()
                  if line.count("\t") >= 3}
    assert EXPERTS <= registered


# ---- AWS Nitro Enclaves ----

@pytest.mark.parametrize("passes", PASSES)
def test_nitro_heartbeat_and_its_echo(tshark, passes):
    assert rows(tshark, "nitro_heartbeat", ["nitro.service", "nitro.heartbeat.value", "nitro.response_in",
                                            "nitro.response_to"], "nitro", passes) == [
        ["3", "Boot heartbeat", "0xb7", "4" if passes else "", ""],
        ["4", "Boot heartbeat", "0xb7", "", "3"],
    ]
    assert info(tshark, "nitro_heartbeat", "nitro", passes) == {
        3: "Heartbeat 0xb7 (enclave booted)", 4: "Heartbeat echo 0xb7"}
    assert tshark.column(tshark.capture(cap("nitro_heartbeat")), "_ws.col.Protocol", "nitro") == ["Nitro", "Nitro"]
    assert experts(tshark, "nitro_heartbeat", "nitro.", passes) == {}


@pytest.mark.parametrize("passes", PASSES)
def test_nitro_heartbeat_wrong_value_and_extra_bytes(tshark, passes):
    assert rows(tshark, "nitro_bad", ["nitro.heartbeat.value", "nitro.heartbeat.extra"], "nitro", passes) == [
        ["3", "0x42", ""], ["4", "0x42", ""], ["7", "0xb7", "0001"]]
    assert info(tshark, "nitro_bad", "nitro", passes) == {
        3: "Heartbeat 0x42 (wrong value)", 4: "Heartbeat echo 0x42 (wrong value)",
        7: "Heartbeat 0xb7 (enclave booted) [extra bytes]"}
    assert experts(tshark, "nitro_bad", "nitro.", passes) == {
        3: {"nitro.heartbeat.bad"}, 4: {"nitro.heartbeat.bad"}, 7: {"nitro.heartbeat.length"}}


@pytest.mark.parametrize("passes", PASSES)
def test_nitro_console_lines_and_enclave_cid(tshark, passes):
    assert rows(tshark, "nitro_console", ["nitro.enclave_cid", "nitro.console.line"], "nitro", passes) == [
        ["3", "16", "[    0.000000] Linux version 5.10.186 (nitro)|[    0.000000] Command line: reboot=k panic=30"],
        ["4", "16", "[    1.234567] nsm: loading out-of-tree module"],
        ["5", "16", "enclave login: "],
    ]
    assert info(tshark, "nitro_console", "nitro", passes) == {
        3: "Console of enclave 16: [    0.000000] Linux version 5.10.186 (nitro) (+1 lines)",
        4: "Console of enclave 16: [    1.234567] nsm: loading out-of-tree module",
        5: "Console of enclave 16: enclave login: "}
    # Port 10002 is no enclave's console (CIDs start at 4): data.
    assert tshark.frames(tshark.capture(cap("nitro_console")), "data") == [8]


def test_nitro_console_heuristic_can_be_switched_off(tshark):
    capture = tshark.capture(cap("nitro_console"))
    off = ["--disable-heuristic", "nitro_console_vsock"]
    assert tshark.frames(capture, "nitro", extra=off) == []
    assert tshark.frames(capture, "data", extra=off) == [3, 4, 5, 8]
    # Decode As brings it back on the port.
    assert tshark.frames(capture, "nitro.console.line", extra=off + ["-d", "vsock.port==10016,nitro.console"]) == \
        [3, 4, 5]


@pytest.mark.parametrize("passes", PASSES)
def test_nitro_vsock_proxy_named_and_tls_decoded(tshark, passes):
    assert rows(tshark, "nitro_proxy", ["nitro.service", "tls.handshake.type", "tls.handshake.extensions_server_name"],
                "nitro", passes) == [
        ["3", "vsock-proxy", "1", "kms.us-east-1.amazonaws.com"],
        ["4", "vsock-proxy", "2", ""],
    ]
    # From 4.4 on, TLS adds the server name to the Client Hello's Info.
    client_hello = {"vsock-proxy, Client Hello", "vsock-proxy, Client Hello (SNI=kms.us-east-1.amazonaws.com)"}
    shown = info(tshark, "nitro_proxy", "nitro", passes)
    assert sorted(shown) == [3, 4] and shown[3] in client_hello and shown[4] == "vsock-proxy, Server Hello"


def test_nitro_ports_follow_decode_as(tshark):
    capture = tshark.capture(cap("nitro_proxy"))
    # Port 8000 given to data by Decode As: what the user chose wins.
    assert tshark.frames(capture, "nitro", extra=["-d", "vsock.port==8000,data"]) == []
    assert tshark.frames(capture, "data", extra=["-d", "vsock.port==8000,data"]) == [3, 4]
    # Without the entry (its protocol off), TLS's heuristic still finds the TLS.
    assert tshark.frames(capture, "tls", extra=["--disable-protocol", "nitro"]) == [3, 4]
    heartbeat = tshark.capture(cap("nitro_heartbeat"))
    assert tshark.frames(heartbeat, "nitro", extra=["-d", "vsock.port==9000,data"]) == []


# ---- systemd notifications ----

@pytest.mark.parametrize("passes", PASSES)
def test_sd_notify_messages(tshark, passes):
    assert rows(tshark, "sdnotify", ["sd_notify.key", "sd_notify.x_systemd_signals_level",
                                     "sd_notify.x_systemd_unit_active", "sd_notify.ready", "sd_notify.status",
                                     "sd_notify.exit_status"], "sd_notify", passes) == [
        ["3", "X_SYSTEMD_SIGNALS_LEVEL", "2", "", "", "", ""],
        ["9", "X_SYSTEMD_UNIT_ACTIVE", "", "basic.target", "", "", ""],
        ["15", "READY|STATUS", "", "", "1", "Startup finished in 1.234s", ""],
        ["21", "EXIT_STATUS", "", "", "", "", "3"],
    ]
    assert info(tshark, "sdnotify", "sd_notify", passes) == {
        3: "X_SYSTEMD_SIGNALS_LEVEL=2", 9: "X_SYSTEMD_UNIT_ACTIVE=basic.target",
        15: "READY=1, STATUS=Startup finished in 1.234s", 21: "EXIT_STATUS=3"}
    assert experts(tshark, "sdnotify", "sd_notify.", passes) == {}


def test_sd_notify_lines_cut_between_packets_are_joined(tshark):
    fields = ["sd_notify.assignment", "sd_notify.fragment", "sd_notify.continued_in", "sd_notify.continues_from",
              "sd_notify.status", "sd_notify.errno"]
    assert rows(tshark, "sdnotify_split", fields, "sd_notify", ["-2"]) == [
        ["3", "READY=1", "STA", "4", "", "", ""],
        ["4", "STATUS=Running", "ERR", "5", "3", "Running", ""],
        ["5", "ERRNO=0", "", "", "4", "", "0"],
        ["11", "", "REA", "12", "", "", ""],
        ["12", "READY=1", "", "", "11", "", ""],
    ]
    assert info(tshark, "sdnotify_split", "sd_notify", ["-2"]) == {
        3: "READY=1, STA [continued]", 4: "STATUS=Running, ERR [continued]", 5: "ERRNO=0",
        11: "REA [continued]", 12: "READY=1"}
    assert experts(tshark, "sdnotify_split", "sd_notify.", ["-2"]) == {
        3: {"sd_notify.line.continued"}, 4: {"sd_notify.line.continued"}, 11: {"sd_notify.line.continued"}}
    # One pass: the joined lines are the same; the cut lines are not known to be cut yet.
    assert [r[1] for r in rows(tshark, "sdnotify_split", ["sd_notify.status"], "sd_notify")] == \
        ["", "Running", "", "", ""]


@pytest.mark.parametrize("passes", PASSES)
def test_sd_notify_bad_assignments(tshark, passes):
    assert rows(tshark, "sdnotify_bad", ["sd_notify.assignment", "sd_notify.key", "sd_notify.ready",
                                         "sd_notify.errno", "sd_notify.mainpid", "sd_notify.watchdog"],
                "sd_notify", passes) == [
        ["3", "READY=1|no equals sign here|=orphan value|ERRNO=abc|MAINPID=99999999999|WATCHDOG=trigger",
         "READY|ERRNO|MAINPID|WATCHDOG", "1", "", "", "trigger"]]
    names = tshark.pdml_field_names(tshark.capture(cap("sdnotify_bad")), passes)[2]
    assert {"sd_notify.assignment.bad", "sd_notify.value.not_number"} <= names
    out = tshark.text(["-r", tshark.capture(cap("sdnotify_bad")), "-Y", "sd_notify", "-T", "fields",
                       "-e", "_ws.expert.message", "-E", "aggregator=|"] + passes)
    assert out.strip().split("|") == ["No '=' in the assignment", "Assignment without a name",
                                      "ERRNO= expects a number", "MAINPID=99999999999 is out of range"]
    # A first line that is no assignment: not sd_notify.
    assert tshark.frames(tshark.capture(cap("sdnotify_bad")), "data", extra=passes) == [9]


def test_sd_notify_seqpacket_message_reassembled(tshark):
    assert rows(tshark, "sdnotify_seqpacket", ["sd_notify.status", "sd_notify.ready"], "sd_notify") == [
        ["4", "Reached target multi-user.target", "1"]]


def test_sd_notify_heuristic_off_and_decode_as(tshark):
    capture = tshark.capture(cap("sdnotify"))
    off = ["--disable-heuristic", "sd_notify_vsock"]
    assert tshark.frames(capture, "sd_notify", extra=off) == []
    assert tshark.frames(capture, "sd_notify.ready", extra=off + ["-d", "vsock.port==41234,sd_notify"]) == [15]


# ---- QEMU guest agent ----

QGA_CALLS = [
    ["3", "1", "guest-sync-delimited", "4", ""],
    ["4", "2", "guest-sync-delimited", "", "3"],
    ["5", "1", "guest-ping", "6", ""],
    ["6", "2", "guest-ping", "", "5"],
    ["8", "1", "guest-info", "10", ""],
    ["10", "2", "guest-info", "", "8"],
    ["11", "1,1", "guest-get-osinfo,guest-get-time", "12,12", ""],
    ["12", "2,2", "guest-get-osinfo,guest-get-time", "", "11,11"],
    ["13", "1", "guest-file-open", "14", ""],
    ["14", "3", "guest-file-open", "", "13"],
    ["15", "1", "guest-shutdown", "", ""],
]


def test_qga_commands_matched_to_replies(tshark):
    got = tshark.fields(tshark.capture(cap("qemuga")), ["frame.number", "qga.msg_type", "qga.command",
                                                         "qga.response_in", "qga.response_to"], "qga",
                        extra=["-2"], occurrence=None)
    assert [[c.replace("|", ",") for c in r] for r in got] == QGA_CALLS


def test_qga_one_pass_links_replies_to_commands(tshark):
    got = rows(tshark, "qemuga", ["qga.response_to", "qga.time"], "qga.msg_type != 1")
    assert got == [["4", "3", "0.001000000"], ["6", "5", "0.001000000"], ["10", "8", "0.002000000"],
                   ["12", "11|11", "0.001000000|0.001000000"], ["14", "13", "0.001000000"]]


@pytest.mark.parametrize("passes", PASSES)
def test_qga_info_column_and_errors(tshark, passes):
    assert info(tshark, "qemuga", "qga", passes) == {
        3: "Command guest-sync-delimited", 4: "Return guest-sync-delimited", 5: "Command guest-ping",
        6: "Return guest-ping", 8: "Command guest-info", 10: "Return guest-info",
        11: "Command guest-get-osinfo, Command guest-get-time",
        12: "Return guest-get-osinfo, Return guest-get-time", 13: "Command guest-file-open",
        14: "Error guest-file-open: GenericError", 15: "Command guest-shutdown"}
    assert rows(tshark, "qemuga", ["qga.error.class", "qga.error.desc", "qga.delimiter"], "qga", passes)[0:2] == [
        ["3", "", "", "0xff"], ["4", "", "", "0xff"]]
    assert rows(tshark, "qemuga", ["qga.error.class", "qga.error.desc"], "qga.error.class", passes) == [
        ["14", "GenericError", "failed to open file '/nonexistent' (mode: 'r'): No such file or directory"]]
    # Each message goes to the JSON dissector.
    assert tshark.frames(tshark.capture(cap("qemuga")), "json.member_with_value == \"version:7.2.19\"",
                         extra=passes) == [10]
    # guest-shutdown does not reply: no expert for it; only the error reply has one.
    assert experts(tshark, "qemuga", "qga.", passes) == {14: {"qga.error"}}


def test_qga_message_split_across_packets(tshark):
    capture = tshark.capture(cap("qemuga"))
    assert tshark.column(capture, "vsock.reassembled_in", "frame.number == 7 or frame.number == 9", extra=["-2"]) == ["8", "10"]
    # Without reassembly the halves are shown as incomplete, nothing thrown.
    off = ["-o", "vsock.desegment:FALSE"]
    assert info(tshark, "qemuga", "frame.number >= 7 and frame.number <= 10", off) == {
        7: "[Incomplete message]", 8: "[Not JSON]", 9: "[Incomplete message]", 10: "[Not JSON]"}
    assert experts(tshark, "qemuga", "qga.", off)[7] == {"qga.incomplete"}


@pytest.mark.parametrize("passes", PASSES)
def test_qga_bad_json_does_not_hide_the_rest(tshark, passes):
    assert info(tshark, "qemuga_bad", "qga", passes) == {
        3: "Command guest-ping", 4: "[Not JSON], Return guest-ping", 5: "[Not JSON], Command guest-info",
        6: "Return guest-info, Return"}
    assert rows(tshark, "qemuga_bad", ["qga.invalid", "qga.response_to"], "qga.invalid", passes) == [
        ["4", "7b2272657475726e223a207b5d7d0a", "3"], ["5", "6e6f74206a736f6e20617420616c6c0a", ""]]
    found = experts(tshark, "qemuga_bad", "qga.", passes)
    assert found[4] == {"qga.json.invalid"} and found[5] == {"qga.json.invalid"}
    assert found[6] == {"qga.reply.no_command"}
    # The last command never ends: a segment that is never reassembled.
    assert tshark.frames(tshark.capture(cap("qemuga_bad")), "vsock.payload and !qga", extra=passes) == [7]


def test_qga_heuristic_off_and_decode_as(tshark):
    capture = tshark.capture(cap("qemuga"))
    off = ["--disable-heuristic", "qga_vsock"]
    assert tshark.frames(capture, "qga", extra=off) == []
    assert len(tshark.frames(capture, "qga", extra=off + ["-d", "vsock.port==4444,qga"])) == 11


# ---- Kata Containers ----

@pytest.mark.parametrize("passes", PASSES)
def test_kata_agent_log(tshark, passes):
    assert rows(tshark, "kata", ["kata.channel", "kata.log.level", "kata.log.msg", "kata.log.subsystem"],
                "kata.log.line", passes) == [
        ["3", "Agent log", "INFO|DEBG", "announce|starting uevents handler", "root|uevent"],
        ["5", "Agent log", "INFO", "ttRPC server started", "rpc"],
        ["6", "Agent log", "", "", ""],
        ["7", "Agent log", "", "", ""],
    ]
    assert info(tshark, "kata", "kata", passes) == {
        3: "Agent log: INFO announce (+1 lines)", 5: "Agent log: INFO ttRPC server started",
        6: "Agent log: kata-agent: plain text line", 7: "Agent log: {not json",
        10: "Debug console input: ls /", 11: "Debug console output: bin (+2 lines)", 12: "Debug console output: # "}
    assert rows(tshark, "kata", ["kata.log.line"], "frame.number == 6 or frame.number == 7", passes) == [
        ["6", "kata-agent: plain text line"], ["7", "{not json"]]
    assert experts(tshark, "kata", "kata.", passes) == {7: {"kata.log.not_json"}}
    assert tshark.column(tshark.capture(cap("kata")), "vsock.reassembled_in", "frame.number == 4",
                         extra=passes) == (["5"] if passes else [""])


@pytest.mark.parametrize("passes", PASSES)
def test_kata_debug_console(tshark, passes):
    assert rows(tshark, "kata", ["kata.channel", "kata.console.line"], "kata.console.line", passes) == [
        ["10", "Debug console input", "ls /"],
        ["11", "Debug console output", "bin|boot|dev"],
        ["12", "Debug console output", "# "],
    ]


def test_kata_truncated_log_line(tshark):
    # With reassembly the cut record waits for more; without, it is shown with a note.
    assert tshark.frames(tshark.capture(cap("kata_truncated")), "kata") == []
    off = ["-o", "vsock.desegment:FALSE"]
    assert rows(tshark, "kata_truncated", ["kata.log.line"], "kata", off) == [
        ["3", '{"msg":"cut short","level":"WARN","ts":"2023-11-14']]
    assert experts(tshark, "kata_truncated", "kata.", off) == {3: {"kata.log.incomplete", "kata.log.not_json"}}


def test_kata_ports_follow_decode_as(tshark):
    capture = tshark.capture(cap("kata"))
    assert tshark.frames(capture, "kata.console.line", extra=["-d", "vsock.port==1026,data"]) == []
    # "# " has no line end: a log record waits for it.
    assert tshark.frames(capture, "kata.log.line", extra=["-d", "vsock.port==1026,kata.log"]) == \
        [3, 5, 6, 7, 10, 11]


def test_ttrpc_port_1024_untouched(tshark):
    capture = tshark.capture("synthetic/ttrpc_agent.pcap")
    assert tshark.frames(capture, "kata or nitro or qga or sd_notify") == []


# ---- the real qemu-guest-agent capture (tools/vm-capture, qemu-ga 7.2 on vsock-listen) ----

@pytest.mark.parametrize("passes", PASSES)
def test_qga_real_capture_matches_ground_truth(tshark, passes):
    import json
    import os
    import vsocktest
    truth = vsocktest.ground_truth(os.path.join(vsocktest.CAPTURES, "real", "qemu_ga.pcap"))
    conn = truth["connections"][0]
    capture = tshark.capture("real/qemu_ga.pcap")
    got = tshark.fields(capture, ["frame.number", "qga.msg_type", "qga.command", "qga.response_to"], "qga",
                        extra=passes)
    commands = [r[2] for r in got if r[1] == "1"]
    # The ground truth names the line that is not JSON "(malformed JSON)": qga.invalid here.
    assert commands == [n for n in conn["command_names"] if n != "(malformed JSON)"]
    assert tshark.frames(capture, "qga.invalid", extra=passes) == [38]
    # Every command's replies: the real reply is linked to it; qemu-ga's error
    # for a stray 0xFF or a non-JSON line answers no command.
    replies = [r for r in got if r[1] in ("2", "3")]
    assert len(replies) == len(conn["lines_received"])
    kinds = [k for ex in conn["qga_exchanges"] for k in ex.get("reply_kind", [])]
    assert [{"2": "return", "3": "error"}[r[1]] for r in replies] == kinds
    frame_of = {}
    for r in got:
        if r[1] == "1":
            frame_of.setdefault(r[2], []).append(r[0])
    linked = [(r[2], r[3]) for r in replies if r[3]]
    assert all(frame in frame_of[name] for name, frame in linked)
    assert len(linked) == len(commands)
    # The sent and received bytes are all there, in order.
    sent = tshark.column(capture, "vsock.payload", "vsock.len > 0 and vsock.src_port == %d"
                         % conn["src"]["port"], extra=passes)
    assert "".join(sent) == "".join(line["hex"] for line in conn["lines_sent"])
    assert json.dumps(truth["pcap"]) == '"qemu_ga.pcap"'


def test_binary_data_on_the_kata_log_port_is_not_a_log(tshark):
    """Port 1025 carrying binary data (no Kata agent there): data, not log lines
    collected and searched up to the 1 MiB line limit."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import gen_test_captures as gen  # the project's capture builder

    client, server = (gen.CID_HOST, 40000), (gen.CID_GUEST, 1025)
    frames = [gen.virtio_frame(client, server, gen.OP_REQUEST), gen.virtio_frame(server, client, gen.OP_RESPONSE)]
    frames += [gen.virtio_frame(server, client, gen.OP_RW, payload=bytes(range(256)) * 16) for _ in range(3)]
    frames += [gen.virtio_frame(server, client, gen.OP_RW, payload=b"plain text line\n")]
    capture = tshark.scratch_file("kata_binary.pcap", gen.pcap_bytes(frames))
    for extra in ([], ["-2"]):
        assert tshark.frames(capture, "kata", extra=extra) == [6]
        assert tshark.frames(capture, "data", extra=extra) == [3, 4, 5]
        assert tshark.frames(capture, "vsock.reassembled_in", extra=extra + ["-2"]) == []
