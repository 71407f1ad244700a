"""The "vsock" configuration profile (profiles/, assembled in BUILD/profiles/vsock by
cmake/Profile.cmake): its colouring rules as `tshark -C vsock --color` applies
them, its columns, filter buttons and I/O graph presets, and the global profile
folder `cmake --install` puts it in."""

import os
import re
import shutil
import subprocess

import pytest

from vsocktest import CAPTURES, REAL_CAPTURES as REAL, TRACKING_EXPERT_PREFIXES, ground_truth, relative
from vsockprofile import (BUILD_DIR, PROFILE_BUILD, PROFILE_FILES, PROFILE_SOURCE, colour_rules, colours,
                          environment, have_pty, install_personal_profile, nobody_dir, psml, run, uat_records)

# tshark --color writes a rule's 16-bit colours as 24-bit escape codes (their high
# bytes): (foreground, background) of each kind of row the README describes.
DARK = (18, 39, 46)
REFUSED = ((255, 252, 156), (164, 0, 0))     # as Wireshark's "TCP RST"
HEADER = (DARK, (255, 224, 0))
BAD = ((247, 135, 135), DARK)                # as "Bad TCP"
STALL = ((255, 252, 156), DARK)
CONNECT = (DARK, (160, 160, 160))            # as "TCP SYN/FIN"
HTTP = (DARK, (228, 255, 199))               # Wireshark's own "HTTP" rule
PAYLOAD = (DARK, (208, 240, 224))
CONTROL = (DARK, (230, 246, 238))

# Expert infos that are not problems (notes and chats): no rule colours them.
NOT_PROBLEMS = {"vsock.analysis.unknown_connection", "vsock.analysis.reused_ports",
                "vsock.analysis.credit_reopened", "vsock.trans_hdr.skipped", "vsock.loopback.paired"}


def header_warnings(tshark):
    """The plugin's expert infos about headers that report a problem."""
    return sorted(e for e in tshark.experts() - NOT_PROBLEMS if not e.startswith(TRACKING_EXPERT_PREFIXES))


BAD_VSOCK = ["vsock.analysis.credit_violation", "vsock.analysis.fwd_cnt_backwards",
             "vsock.analysis.data_after_shutdown", "vsock.analysis.data_after_rst",
             "vsock.analysis.data_before_connect", "vsock.analysis.no_response",
             "vsock.seqpacket.message_cut"]


@pytest.fixture(scope="module")
def profile(tshark):
    return install_personal_profile(tshark)


def rule_colours():
    """Each rule of the profile's list: its (foreground, background) as 24-bit colours."""
    return {name: (tuple(v >> 8 for v in fg), tuple(v >> 8 for v in bg))
            for name, _, bg, fg in colour_rules(os.path.join(PROFILE_BUILD, "colorfilters"))}


def coloured(tshark, capture, extra=(), env=None):
    """{frame: (fg, bg)} of `tshark -C vsock --color`: the rule tshark names for each
    frame (frame.coloring_rule.name) and, where a pseudo-terminal can be had (not in a
    chroot without /dev/pts), the 24-bit escape codes it prints there, which must agree."""
    env = env or environment(tshark, COLORTERM="truecolor")
    args = ["tshark", "-C", "vsock", "--color", "-r", capture] + list(extra)
    rc, out, err = run(args + ["-T", "fields", "-e", "frame.number", "-e", "frame.coloring_rule.name"], env)
    assert rc == 0 and err == "", err
    by_rule = rule_colours()
    rows = {int(number): by_rule[name] if name else (None, None)
            for number, name in (line.split("\t") for line in out.splitlines())}
    if have_pty():
        rc, out, err = run(args, env, tty=True)
        assert rc == 0 and err == "", err
        assert colours(out) == rows
    return rows


def present(value):
    return value not in ("", "0")


def default_rules(tshark, capture):
    """{frame: the rule of Wireshark's own default colouring that matches it}."""
    rc, out, err = run(["tshark", "--color", "-r", capture, "-T", "fields", "-e", "frame.number",
                        "-e", "frame.coloring_rule.name"], environment(tshark))
    assert rc == 0 and err == "", err
    return {int(number): name for number, name in (line.split("\t") for line in out.splitlines()) if name}


def expected_colours(tshark, capture):
    """Each frame's row colour, from its fields, in the order of the README's rules:
    a payload an application dissector decoded (HTTP, or the Ethernet frames of a
    gvisor-tap-vsock tunnel) keeps the colour Wireshark's defaults give it."""
    experts = sorted(tshark.experts())
    defaults = default_rules(tshark, capture)
    by_rule = rule_colours()
    header = set(header_warnings(tshark))
    rows = tshark.fields(capture, ["frame.number", "vsock.op", "vsock.virtio.op", "frame.protocols"] + experts,
                         occurrence="f")
    wanted = {}
    for number, op, virtio_op, protocols, *flags in rows:
        has = {name for name, value in zip(experts, flags) if present(value)}
        layers = protocols.split(":")
        if has & {"vsock.analysis.refused", "vsock.analysis.reset"}:
            kind = REFUSED
        elif has & header:
            kind = HEADER
        elif has & set(BAD_VSOCK):
            kind = BAD
        elif "vsock.analysis.credit_exhausted" in has or virtio_op == "7":
            kind = STALL
        elif op in ("1", "2"):
            kind = CONNECT
        elif op == "4" and int(number) in defaults:
            kind = by_rule[defaults[int(number)]]
            assert kind == HTTP or "http" not in layers
        elif op == "4":
            kind = PAYLOAD
        else:
            kind = CONTROL
        wanted[int(number)] = kind
    return wanted


@pytest.mark.skipif(not have_pty(), reason="no pseudo-terminal here (a chroot without /dev/pts)")
def test_escape_codes_on_a_terminal(tshark, profile):
    """What a terminal gets: 24-bit foreground and background codes per row."""
    rc, out, err = run(["tshark", "-C", "vsock", "--color", "-r", tshark.capture("real/credit.pcap"), "-c", "5"],
                       environment(tshark, COLORTERM="truecolor"), tty=True)
    assert rc == 0 and err == ""
    lines = [line for line in out.splitlines() if re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).strip()]
    assert len(lines) == 5
    assert lines[2].endswith("\x1b[38;2;18;39;46m\x1b[48;2;208;240;224m    3   0.003126        local \u2192 local        "
                             "vsock 40076 0 RW 40000 65536 40000 3376184825 \u2192 5001 [RW] Len=40000\x1b[K")
    assert "\x1b[38;2;255;252;156m\x1b[48;2;18;39;46m    4 " in lines[3]
    rc, out, err = run(["tshark", "-C", "vsock", "--color", "-r", tshark.capture("real/refused.pcap"), "-c", "2"],
                       environment(tshark, COLORTERM="truecolor"), tty=True)
    assert "\x1b[38;2;255;252;156m\x1b[48;2;164;0;0m    2 " in out.splitlines()[1]


def test_refused_connection_rst_rows_are_red(tshark, profile):
    """refused.pcap: each refusing RST in TCP RST's colours, its REQUEST grey."""
    rows = coloured(tshark, tshark.capture("real/refused.pcap"))
    assert rows == {1: CONNECT, 2: REFUSED, 3: CONNECT, 4: REFUSED, 5: CONNECT, 6: REFUSED}


def test_credit_exhausted_rows_differ_from_plain_data(tshark, profile):
    """credit.pcap: the RW that exhausts the credit is dark, plain RW light green,
    the CREDIT_UPDATE that reopens it a control row, the closing RSTs grey (not red)."""
    rows = coloured(tshark, tshark.capture("real/credit.pcap"))
    assert len(rows) == 255
    assert rows[3] == PAYLOAD and rows[4] == STALL and rows[5] == CONTROL
    assert rows[1] == rows[2] == CONNECT
    assert rows[253] == rows[254] == rows[255] == CONNECT     # SHUTDOWN, then RST after it
    assert sorted(n for n, kind in rows.items() if kind == STALL) == \
        tshark.frames(tshark.capture("real/credit.pcap"), "vsock.analysis.credit_exhausted")


@pytest.mark.parametrize("pcap", REAL, ids=relative)
def test_every_row_of_the_real_captures(tshark, profile, pcap):
    """Every frame of every real capture gets the colour its fields call for; HTTP
    decoded from vsock payloads keeps Wireshark's HTTP colour."""
    capture = tshark.capture(relative(pcap))
    assert coloured(tshark, capture) == expected_colours(tshark, capture)


@pytest.mark.parametrize("name,frames", [
    ("analysis_reset.pcap", {5: REFUSED, 6: BAD}),
    ("analysis_seqpacket_cut.pcap", {6: REFUSED}),
    ("analysis_credit.pcap", {4: STALL, 7: BAD, 10: BAD}),     # 7 is a violation and exhausts the credit
    ("analysis_early_data.pcap", {2: BAD}),
    ("analysis_halfclose.pcap", {7: BAD}),
    ("bad_op_mismatch.pcap", {1: HEADER}),
    ("bad_payload_longer.pcap", {1: HEADER}),
    ("good.pcap", {5: STALL, 3: PAYLOAD, 4: CONTROL, 1: CONNECT, 21: CONNECT, 22: CONNECT}),
])
def test_problem_rows(tshark, profile, name, frames):
    """Resets, violations, header warnings: the first matching rule wins."""
    capture = tshark.capture("synthetic/" + name)
    rows = coloured(tshark, capture)
    assert {n: rows[n] for n in frames} == frames
    assert rows == expected_colours(tshark, capture)


def test_every_vsock_warning_has_a_rule(tshark):
    """Each expert info that reports a problem is named in a vsock rule (a new one must be too)."""
    rules = colour_rules(os.path.join(PROFILE_SOURCE, "vsock-colorfilters"))
    named = set()
    for _, text, _, _ in rules:
        named |= set(re.findall(r"vsock\.[a-z0-9_.]+", text))
    assert tshark.experts() - NOT_PROBLEMS <= named
    assert not (NOT_PROBLEMS & named)


def global_data_dir(tshark):
    _, out, _ = run(["tshark", "-G", "folders"], environment(tshark))
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)["Global configuration"].strip()


def test_profile_rules_surround_wireshark_defaults(tshark):
    """The profile's list: vsock's problem and connect rules, this Wireshark's own
    default rules unchanged, then vsock's catch-all payload and control rules."""
    vsock = colour_rules(os.path.join(PROFILE_SOURCE, "vsock-colorfilters"))
    defaults = colour_rules(os.path.join(global_data_dir(tshark), "colorfilters"))
    built = colour_rules(os.path.join(PROFILE_BUILD, "colorfilters"))
    assert [r[0] for r in vsock] == ["vsock refused or reset", "vsock header warnings", "Bad vsock",
                                     "vsock credit stall", "vsock connect/shutdown", "vsock payload", "vsock"]
    assert len(defaults) > 10
    assert built == vsock[:5] + defaults + vsock[5:]


def test_every_rule_compiles(tshark):
    """Each filter of the profile's list is a valid display filter on this Wireshark."""
    capture = tshark.capture("real/stream_basic.pcap")
    for name, text, _, _ in colour_rules(os.path.join(PROFILE_BUILD, "colorfilters")):
        rc, _, err = tshark.run(["-r", capture, "-Y", text], check=False)
        assert rc == 0, f"{name}: {err}"


def test_columns(tshark, profile):
    """Stream, operation, payload length, credit and bytes in flight, as the fields say."""
    capture = tshark.capture("real/credit.pcap")
    rc, out, err = run(["tshark", "-C", "vsock", "-r", capture, "-T", "psml"], environment(tshark))
    assert rc == 0 and err == ""
    titles, packets = psml(out)
    assert titles == ["No.", "Time", "Source", "Destination", "Protocol", "Length",
                      "Stream", "Op", "Payload", "Credit", "In flight", "Info"]
    fields = tshark.fields(capture, ["vsock.stream", "vsock.virtio.op", "vsock.len",
                                     "vsock.analysis.peer_free", "vsock.analysis.bytes_in_flight"])
    assert len(packets) == len(fields) == 255
    names = {"1": "Request", "2": "Response", "3": "Rst", "4": "Shutdown", "5": "RW",
             "6": "Credit update", "7": "Credit request"}
    for cells, (stream, op, length, credit, in_flight) in zip(packets, fields):
        assert cells[6:11] == [stream, names[op], length, credit, in_flight]
    # Frame 4 exhausts the credit: 25536 bytes were left, 65536 (the whole buffer) are then in flight.
    assert packets[3][6:11] == ["0", "RW", "25536", "25536", "65536"]


def test_filter_buttons(tshark, profile):
    """Refused, Resets, Credit stalls, Payload select what their names say."""
    buttons = {label: (enabled, expression, comment)
               for enabled, label, expression, comment in uat_records(os.path.join(PROFILE_BUILD, "dfilter_buttons"))}
    assert list(buttons) == ["Refused", "Resets", "Credit stalls", "Payload"]
    assert all(enabled == "TRUE" and comment for enabled, _, comment in buttons.values())

    def frames(label, name):
        return tshark.frames(tshark.capture(name), buttons[label][1])

    assert frames("Refused", "real/refused.pcap") == [2, 4, 6]
    assert frames("Refused", "real/credit.pcap") == []
    assert frames("Resets", "synthetic/analysis_reset.pcap") == [5]
    assert frames("Resets", "real/credit.pcap") == []       # its RSTs follow a SHUTDOWN
    credit = tshark.capture("real/credit.pcap")
    assert frames("Credit stalls", "real/credit.pcap") == sorted(
        tshark.frames(credit, "vsock.analysis.credit_exhausted") + tshark.frames(credit, "vsock.analysis.credit_reopened"))
    assert frames("Credit stalls", "synthetic/good.pcap") == [5]      # its CREDIT_REQUEST
    assert frames("Payload", "real/credit.pcap") == tshark.frames(credit, "vsock.virtio.op == 5")


def io_stat(tshark, capture, calc, yfield, expression):
    """One I/O graph as tshark computes it over the whole capture (one 1 s interval
    for these short captures)."""
    out = tshark.text(["-r", capture, "-q", "-z", f"io,stat,10,{calc}({yfield}){expression}"])
    rows = [line for line in out.splitlines() if "<>" in line]
    assert len(rows) == 1, out
    return int(rows[0].split("|")[2])


def test_io_graph_presets(tshark, profile):
    """Payload bytes each way, bytes in flight and peer credit, checked on credit.pcap
    against what the applications sent and the packets' own fields."""
    records = uat_records(os.path.join(PROFILE_BUILD, "io_graphs"))
    # enabled, name, filter, colour, style, Y axis, Y field, SMA period, Y axis factor
    assert all(len(r) == 9 and r[0] == "TRUE" and re.fullmatch(r"#[0-9a-f]{6}", r[3]) for r in records)
    graphs = {r[1]: (r[2], r[5], r[6]) for r in records}
    assert list(graphs) == ["Payload bytes, client to listener", "Payload bytes, listener to client",
                            "Bytes in flight (max)", "Peer credit (min)"]
    capture = tshark.capture("real/credit.pcap")
    truth = ground_truth(os.path.join(CAPTURES, "real/credit.pcap"))["connections"][0]

    def value(name):
        expression, axis, yfield = graphs[name]
        return io_stat(tshark, capture, axis.split("(")[0], yfield, expression)

    assert value("Payload bytes, client to listener") == truth["src_to_dst"]["bytes"] == 1048576
    assert value("Payload bytes, listener to client") == truth["dst_to_src"]["bytes"] == 12
    listener_buffer = int(tshark.column(capture, "vsock.virtio.buf_alloc", "vsock.virtio.op == 2")[0])
    assert value("Bytes in flight (max)") == listener_buffer == 65536
    credits = [int(v) for v in tshark.column(capture, "vsock.analysis.peer_free", "vsock.analysis.peer_free")]
    assert value("Peer credit (min)") == min(credits)


def test_tshark_with_profile_prints_no_warning(tshark, profile):
    """The profile's UAT files (buttons, I/O graphs) and rules load without a complaint."""
    rc, out, err = run(["tshark", "-C", "vsock", "-r", tshark.capture("real/http.pcap"), "--color"],
                       environment(tshark, COLORTERM="truecolor"))
    assert rc == 0 and err == "" and len(out.splitlines()) == 19


def cmake_cache(name):
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    return None


def test_cmake_install_makes_a_global_profile(tshark):
    """`cmake --install` (into a DESTDIR) puts the profile in this Wireshark's global
    profiles folder, where `tshark -C vsock` finds it with an empty personal folder."""
    if cmake_cache("VSOCK_INSTALL_PERSONAL") in ("ON", "TRUE", "1"):
        pytest.skip("this build installs into the personal folder")
    destdir = nobody_dir(tshark.scratch)
    proc = subprocess.run(["cmake", "--install", BUILD_DIR], env=dict(os.environ, DESTDIR=destdir),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, proc.stdout.decode()
    data_dir = global_data_dir(tshark)
    installed = destdir + os.path.join(data_dir, "profiles", "vsock")
    assert sorted(os.listdir(installed)) == PROFILE_FILES
    for name in PROFILE_FILES:
        with open(os.path.join(installed, name), "rb") as a, open(os.path.join(PROFILE_BUILD, name), "rb") as b:
            assert a.read() == b.read(), name
    prefix = cmake_cache("CMAKE_INSTALL_PREFIX")
    tool = destdir + os.path.join(prefix, "bin", "vsock-stream-graph")
    assert os.access(tool, os.X_OK)
    assert os.path.isfile(destdir + os.path.join(prefix, "share", "doc", "wireshark-vsock", "vsock-colorfilters"))

    # The same tshark, its data folder replaced by one that holds the installed
    # profile next to Wireshark's own files (WIRESHARK_DATA_DIR, honoured when not root).
    farm = nobody_dir(tshark.scratch)
    for name in os.listdir(data_dir):
        if name != "profiles":
            os.symlink(os.path.join(data_dir, name), os.path.join(farm, name))
    os.makedirs(os.path.join(farm, "profiles"))
    for name in os.listdir(os.path.join(data_dir, "profiles")):
        os.symlink(os.path.join(data_dir, "profiles", name), os.path.join(farm, "profiles", name))
    os.symlink(installed, os.path.join(farm, "profiles", "vsock"))
    home = nobody_dir(tshark.scratch)
    env = environment(tshark, HOME=home, WIRESHARK_DATA_DIR=farm, COLORTERM="truecolor")
    rc, out, err = run(["tshark", "-G", "folders"], env)
    assert f"Global configuration:\t{farm}" in out
    assert coloured(tshark, tshark.capture("real/refused.pcap"), env=env) == \
        {1: CONNECT, 2: REFUSED, 3: CONNECT, 4: REFUSED, 5: CONNECT, 6: REFUSED}
    # tshark copied the global profile into the personal folder on first use.
    assert sorted(os.listdir(os.path.join(home, ".config", "wireshark", "profiles", "vsock"))) == PROFILE_FILES
    shutil.rmtree(destdir, ignore_errors=True)
