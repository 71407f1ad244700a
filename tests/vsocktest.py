"""Runs tshark with the plugin from the build tree, or without it (the built-in).

tshark ignores WIRESHARK_PLUGIN_DIR when its real uid or gid is 0, so as root
every run drops to nobody (65534) with setpriv. The plugin and the captures are
copied into a world-readable temporary folder for that reason.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURES = os.path.join(REPO, "test-captures")

# Real kernel captures, each with the JSON of what its applications sent.
REAL_CAPTURES = sorted(glob.glob(os.path.join(CAPTURES, "real", "*.pcap")) +
                       glob.glob(os.path.join(CAPTURES, "reference", "*.pcap")))


def relative(path):
    """A capture's name under test-captures/, e.g. 'real/http.pcap'."""
    return os.path.relpath(path, CAPTURES)


def ground_truth(pcap):
    with open(os.path.splitext(pcap)[0] + ".json") as f:
        return json.load(f)


def check_direction(name, wire, truth):
    """The payload bytes of one direction of a connection against its ground truth."""
    if truth.get("bytes") is None:
        # Only the receiving program was instrumented (the sender was qemu-ga,
        # gvproxy): it read exactly what crossed.
        assert len(wire) == truth["received_bytes"], name
        assert hashlib.sha256(wire).hexdigest() == truth["received_sha256"], name
    elif truth.get("receiver_got_everything") or truth.get("received_bytes") is None:
        # Every byte the sender's send() accepted crossed the wire once, in order.
        assert len(wire) == truth["bytes"], name
        assert hashlib.sha256(wire).hexdigest() == truth["sha256"], name
    else:
        # Reset or closed with unread data: the peer read a prefix of what crossed.
        assert truth["received_bytes"] <= len(wire) <= truth["bytes"], name


# What tshark must never print, whatever the input: on stderr, and in the
# dissection itself (a dissector bug shows up as "[Dissector bug, protocol ...").
FATAL_STDERR = ("Dissector bug", "DISSECTOR_ASSERT", "AddressSanitizer", "LeakSanitizer",
                "runtime error:", "** (tshark", "CRITICAL", "WARNING **")
FATAL_STDOUT = ("Dissector bug, protocol", "_ws.malformed.dissector_bug")


# The plugin's FT_NONE fields that are subtrees, not expert infos: `tshark -G
# fields` lists expert infos as FT_NONE fields too, with nothing to tell them apart.
SUBTREE_FIELDS = {"vsock.analysis", "vsock.segments"}
# Expert infos of the connection tracking, analysis and reassembly; the others
# are about the headers.
TRACKING_EXPERT_PREFIXES = ("vsock.analysis.", "vsock.seqpacket.", "vsock.loopback.")


class TsharkError(AssertionError):
    pass


def link_system_plugins(folder, abi):
    system = subprocess.run(["pkg-config", "--variable=plugindir", "wireshark"],
                            stdout=subprocess.PIPE, check=False).stdout.decode().strip()
    for kind in ("epan", "wiretap", "codecs"):
        os.makedirs(os.path.join(folder, abi, kind))
        source = os.path.join(system, kind)
        if not system or not os.path.isdir(source):
            continue
        for name in os.listdir(source):
            if name != "vsock.so":
                os.symlink(os.path.join(source, name), os.path.join(folder, abi, kind, name))


class Tshark:
    """tshark with the plugin (plugin=True) or with the built-in dissector only."""

    def __init__(self, plugin_path, abi):
        self.root = tempfile.mkdtemp(prefix="vsock-tests-")
        os.chmod(self.root, 0o755)
        # WIRESHARK_PLUGIN_DIR replaces the system plugin folder: link its other
        # plugins (stats_tree serves -z ...,tree) into both folders, but never an
        # installed vsock.so.
        self.plugin_dir = os.path.join(self.root, "plugins")
        self.no_plugin_dir = os.path.join(self.root, "no-plugins")
        for folder in (self.plugin_dir, self.no_plugin_dir):
            link_system_plugins(folder, abi)
        shutil.copy(plugin_path, os.path.join(self.plugin_dir, abi, "epan", "vsock.so"))
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.home)
        self.captures = os.path.join(self.root, "captures")
        shutil.copytree(CAPTURES, self.captures)
        self.scratch = os.path.join(self.root, "scratch")
        os.makedirs(self.scratch)
        for dirpath, dirnames, filenames in os.walk(self.root):
            os.chmod(dirpath, 0o777 if dirpath in (self.home, self.scratch) else 0o755)
            for name in filenames:
                if not os.path.islink(os.path.join(dirpath, name)):
                    os.chmod(os.path.join(dirpath, name), 0o644)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def capture(self, name):
        """Path of a capture under test-captures/, e.g. 'synthetic/good.pcap'."""
        path = os.path.join(self.captures, name)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        return path

    def scratch_file(self, name, content, mode=0o644):
        path = os.path.join(self.scratch, name)
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def run(self, args, plugin=True, check=True):
        """Runs tshark; returns (returncode, stdout, stderr). Fails on any crash sign."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "TZ": "UTC",
            "LC_ALL": "C.UTF-8",
            "WIRESHARK_PLUGIN_DIR": self.plugin_dir if plugin else self.no_plugin_dir,
            "WIRESHARK_ABORT_ON_DISSECTOR_BUG": "1",
            # 4.6's SSH dissector logs a warning on post-quantum key exchange
            # (real/ssh.pcap); it is Wireshark's, not a sign of our bug.
            "WIRESHARK_LOG_DOMAINS": "!packet-ssh",
        }
        for passthrough in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if passthrough in os.environ:
                env[passthrough] = os.environ[passthrough]
        cmd = ["tshark"] + list(args)
        if os.getuid() == 0 or os.getgid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=600)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        # Other dissectors' own log warnings (4.6's SSH logs post-quantum key
        # exchanges) are not ours to judge.
        ours = "\n".join(line for line in err.splitlines()
                         if not re.search(r"\[packet-(?!vsock)\S* WARNING\]", line))
        fatal = [p for p in FATAL_STDERR if p in ours]
        if args[0] != "-G":  # the glossaries list the names of these fields
            fatal += [p for p in FATAL_STDOUT if p in out]
        for pattern in fatal:
            raise TsharkError(f"tshark {' '.join(args)}: '{pattern}' in output:\n{err[-3000:]}")
        if proc.returncode < 0:
            raise TsharkError(f"tshark {' '.join(args)} died with signal {-proc.returncode}:\n{err[-3000:]}")
        if check and proc.returncode != 0:
            raise TsharkError(f"tshark {' '.join(args)} exited {proc.returncode}:\n{err[-3000:]}")
        return proc.returncode, out, err

    def text(self, args, plugin=True):
        return self.run(args, plugin=plugin)[1]

    def fields(self, capture, fields, display_filter=None, extra=(), plugin=True, occurrence=None):
        """One row per displayed packet: a list with one string per field
        (several occurrences joined with "|")."""
        args = ["-r", capture, "-T", "fields", "-E", "separator=\t", "-E", "aggregator=|"]
        if occurrence:
            args += ["-E", f"occurrence={occurrence}"]
        for field in fields:
            args += ["-e", field]
        if display_filter:
            args += ["-Y", display_filter]
        args += list(extra)
        out = self.text(args, plugin=plugin)
        # FT_BOOLEAN values print as 1/0 in 4.0 and True/False in 4.4 and 4.6.
        bools = {"True": "1", "False": "0"}
        return [[",".join(bools.get(v, v) for v in cell.split(",")) for cell in line.split("\t")]
                for line in out.splitlines()]

    def column(self, capture, field, display_filter=None, extra=(), plugin=True):
        return [row[0] for row in self.fields(capture, [field], display_filter, extra, plugin)]

    def frames(self, capture, display_filter, extra=(), plugin=True):
        """Frame numbers that a display filter selects."""
        return [int(n) for n in self.column(capture, "frame.number", display_filter, extra, plugin)]

    def pdml_field_names(self, capture, extra=(), plugin=True):
        """Per packet, the set of field names in the PDML tree (expert infos included)."""
        out = self.text(["-r", capture, "-T", "pdml"] + list(extra), plugin=plugin)
        packets = out.split("<packet>")[1:]
        return [set(re.findall(r'<field name="([^"]+)"', packet)) for packet in packets]

    def plugin_fields(self):
        """The plugin's fields as `tshark -G fields` lists them: abbreviation -> type."""
        if not hasattr(self, "_plugin_fields"):
            rows = [line.split("\t") for line in self.text(["-G", "fields"]).splitlines()]
            self._plugin_fields = {row[2]: row[3] for row in rows
                                   if row[0] == "F" and len(row) > 4 and row[4] == "vsock"}
        return self._plugin_fields

    def experts(self):
        """Every expert info the plugin registers under vsock (from the plugin itself)."""
        return {name for name, ftype in self.plugin_fields().items()
                if ftype == "FT_NONE" and name not in SUBTREE_FIELDS}

    def header_experts(self):
        return {name for name in self.experts() if not name.startswith(TRACKING_EXPERT_PREFIXES)}

    def field_values(self, field):
        """A field's value names as the plugin registers them: name -> value (a string)."""
        rows = [line.split("\t") for line in self.text(["-G", "values"]).splitlines()]
        return {row[3]: row[2] for row in rows if row[0] == "V" and len(row) > 3 and row[1] == field}

    def vsock_experts(self, capture, extra=(), plugin=True):
        """Frame number -> the plugin's expert infos on it, for frames that have any."""
        experts = self.experts()
        per_packet = self.pdml_field_names(capture, extra, plugin)
        return {number: names & experts
                for number, names in enumerate(per_packet, start=1) if names & experts}
