"""RW payloads go to Decode As ports, the "vsock" heuristic list, the "vsock.port"
table, then data; other plugins and Lua scripts can add to both."""

HTTP = "synthetic/http_request.pcap"
GOOD = "synthetic/good.pcap"

# A Lua script that adds to both of the plugin's tables: a heuristic that claims
# payloads starting with "hello", and a port-table entry for port 1234.
LUA_SCRIPT = """
local heur = Proto("vsockheur", "vsock heuristic test")
local heur_word = ProtoField.string("vsockheur.word", "Word")
heur.fields = { heur_word }
local function heur_dissector(tvb, pinfo, tree)
    if tvb:len() < 5 or tvb:range(0, 5):string() ~= "hello" then return false end
    tree:add(heur_word, tvb:range(0, 5))
    return true
end
heur:register_heuristic("vsock", heur_dissector)

local byport = Proto("vsockport", "vsock port table test")
local port_len = ProtoField.uint32("vsockport.len", "Length")
byport.fields = { port_len }
function byport.dissector(tvb, pinfo, tree)
    tree:add(port_len, tvb:len())
    return tvb:len()
end
DissectorTable.get("vsock.port"):add(1234, byport)
"""


def lua_args(tshark):
    return ["-X", "lua_script:" + tshark.scratch_file("vsock_tables.lua", LUA_SCRIPT)]


def test_decode_as_port_hands_a_request_to_http(tshark):
    capture = tshark.capture(HTTP)
    rows = tshark.fields(capture, ["frame.number", "http.request.method", "http.request.uri", "http.host",
                                   "http.response.code"], "http", extra=["-d", "vsock.port==8080,http"])
    # From 4.4 on, HTTP also puts the request's URI (http.request.uri) in the response.
    if rows[1:] and rows[1][2] == "/index.html":
        rows[1][2] = ""
    assert rows == [["3", "GET", "/index.html", "vm.example", ""], ["4", "", "", "", "200"]]
    assert tshark.column(capture, "_ws.col.Protocol", "frame.number == 3",
                         extra=["-d", "vsock.port==8080,http"]) == ["HTTP"]


def test_http_found_by_heuristic_without_decode_as(tshark):
    capture = tshark.capture(HTTP)
    assert tshark.frames(capture, "http") == [3, 4]
    # Without the heuristic the payload is data.
    off = ["--disable-heuristic", "http_vsock"]
    assert tshark.frames(capture, "http", extra=off) == []
    assert tshark.frames(capture, "data", extra=off) == [3, 4]


def test_every_tcp_protocol_is_offered_for_decode_as(tshark):
    capture = tshark.capture(HTTP)
    _, _, err = tshark.run(["-r", capture, "-d", "vsock.port==8080,bogus", "-c", "1"], check=False)
    offered = {line.split()[0] for line in err.splitlines() if line.startswith("\t")}
    assert {"http", "http2", "tls", "ssh"} <= offered
    assert len(offered) > 100


def test_heuristic_and_port_table_accept_lua_dissectors(tshark):
    capture = tshark.capture(GOOD)
    extra = lua_args(tshark)
    # Frame 3 ("hello\\n", port 1234): heuristics come first by default.
    assert tshark.frames(capture, "vsockheur.word", extra=extra) == [3]
    # Frame 6 ("world!\\n", port 1234): no heuristic wants it, the port table does.
    assert tshark.frames(capture, "vsockport.len", extra=extra) == [6]
    assert tshark.column(capture, "vsockport.len", "vsockport.len", extra=extra) == ["7"]


def test_preference_tries_the_port_table_first(tshark):
    capture = tshark.capture(GOOD)
    extra = lua_args(tshark) + ["-o", "vsock.try_heuristic_first:FALSE"]
    assert tshark.frames(capture, "vsockheur.word", extra=extra) == []
    assert tshark.frames(capture, "vsockport.len", extra=extra) == [3, 6]


def test_decode_as_wins_over_heuristics(tshark):
    capture = tshark.capture(GOOD)
    # Port 50000 (the higher port of frame 3) chosen with Decode As beats the heuristic.
    extra = lua_args(tshark) + ["-d", "vsock.port==50000,vsockport"]
    assert tshark.frames(capture, "vsockheur.word", extra=extra) == []
    assert tshark.frames(capture, "vsockport.len", extra=extra) == [3, 6]


def test_only_rw_payload_is_handed_on(tshark):
    capture = tshark.capture("synthetic/bad_payload_on_non_rw.pcap")
    assert tshark.frames(capture, "data") == []
    assert tshark.frames(capture, "vsock.payload") == [1]


LATE = "synthetic/handoff_late_protocol.pcap"


def test_heuristics_see_the_first_payload_of_each_direction(tshark):
    """A direction whose first payload no heuristic recognised is not offered to
    them again (frame 4 stays data); a connection whose start was not captured
    keeps being offered (frame 6), and one recognised at its start stays HTTP
    (frames 9, 10). The same on one pass and two."""
    capture = tshark.capture(LATE)
    for extra in ([], ["-2"]):
        assert tshark.frames(capture, "http", extra=extra) == [6, 9, 10]
        assert tshark.frames(capture, "data", extra=extra) == [3, 4, 5, 11]
    assert tshark.column(capture, "http.request.uri", "http.request") == ["/mid", "/first"]


HTTP2 = "synthetic/handoff_http2.pcap"


def test_http2_found_by_its_preface_on_any_port(tshark):
    """HTTP/2 with prior knowledge on port 5000: the client's preface makes
    the connection HTTP/2, the server's side included; a connection that does
    not start with the preface is data. The plugin asks Wireshark's HTTP/2
    heuristic only when it could accept (it creates a conversation for every
    payload it sees): the answers must be the ones it gives itself, on one
    pass, two, without connection analysis and with every payload offered."""
    capture = tshark.capture(HTTP2)
    expected = [["3", "HTTP2", "4", ""], ["4", "HTTP2", "4", ""],
                ["5", "HTTP2", "4|1", "GET|http|/|vm.example"], ["6", "HTTP2", "4|1|0", "200"],
                ["9", "vsock", "", ""], ["10", "vsock", "", ""]]
    for extra in ([], ["-2"], ["-o", "vsock.analyze_connections:FALSE"],
                  ["-o", "vsock.heuristics_every_packet:TRUE"]):
        rows = tshark.fields(capture, ["frame.number", "_ws.col.Protocol", "http2.type", "http2.header.value"],
                             "vsock.op == 4", extra=extra)
        assert rows == expected, extra
        body = tshark.column(capture, "http2.data.data", "http2.data.data", extra=extra)
        assert [value.replace(":", "") for value in body] == [b"hello".hex()]
        assert tshark.frames(capture, "data", extra=extra) == [9, 10]
    # The heuristic can be switched off like the others.
    assert tshark.frames(capture, "http2", extra=["--disable-heuristic", "http2_vsock"]) == []


def test_heuristics_on_every_payload_by_preference(tshark):
    capture = tshark.capture(LATE)
    every = ["-o", "vsock.heuristics_every_packet:TRUE"]
    assert tshark.frames(capture, "http", extra=every) == [4, 6, 9, 10]
    assert tshark.fields(capture, ["frame.number", "http.request.uri"], "http.request", extra=every) == [
        ["4", "/late"], ["6", "/mid"], ["9", "/first"]]


def test_heuristics_rule_without_connection_analysis(tshark):
    """The rule needs connection tracking, which runs with vsock.analyze_connections
    off too: the same payloads are offered to the heuristics."""
    capture = tshark.capture(LATE)
    off = ["-o", "vsock.analyze_connections:FALSE"]
    for extra in ([], ["-2"]):
        assert tshark.frames(capture, "http", extra=extra + off) == tshark.frames(capture, "http", extra=extra) \
            == [6, 9, 10]
