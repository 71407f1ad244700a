#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""GUI check: Wireshark's Qt GUI under Xvfb opens real captures with the plugin
and the "vsock" configuration profile from a build tree, and takes screenshots.

    tools/gui-check.py [--build BUILD] [--out DIR] [--docs]

Each scene starts Wireshark afresh, as uid 65534 when run as root (Wireshark
loads no personal plugin as root), with a HOME of its own:
  packet-list     refused.pcap then credit.pcap (mergecap -a) in the profile's colours
  details         credit.pcap, the RW that exhausts the credit, vsock tree expanded
  follow          Analyze > Follow > vsock Stream on stream_basic.pcap (4.2 and later)
  io-graph        Statistics > I/O Graphs (-z io,stat) with the profile's presets
  global-profile  the profile installed by `cmake --install` (into a DESTDIR) as
                  Wireshark's global profile, opened with an empty personal folder;
                  the status bar's profile switcher
The check fails when Wireshark crashes or exits with an error, prints a Qt or
GLib critical message, a dialog of Follow or I/O Graphs does not open, or a
screenshot lacks what the scene shows (the rule colours, the graphs' colours).
Screenshots go to DIR (default BUILD/gui-check) as SCENE-X.Y.png. --docs also
copies the ones the README shows into docs/ and, unless --scene is given, draws
docs/stream-graph-credit.png with tools/vsock-stream-graph. tools/gui-docs.sh
runs it on this host and takes the Follow picture from the sid chroot (4.6).

Needs Xvfb, xdotool, ImageMagick (import), wireshark (Qt), tshark, mergecap,
python3-numpy (python3-matplotlib for --docs): tools/setup.sh installs them.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREEN = (1400, 1050)

# Colours the scenes look for, as 8-bit RGB: the profile's row backgrounds.
ROW_REFUSED = (164, 0, 0)
ROW_STALL = (18, 39, 46)
ROW_PAYLOAD = (208, 240, 224)
ROW_CONTROL = (230, 246, 238)
ROW_CONNECT = (160, 160, 160)
# Follow Stream's default backgrounds of the client's and the server's bytes.
FOLLOW_CLIENT = (251, 237, 237)
FOLLOW_SERVER = (237, 237, 251)
# The profile's I/O graph colours (profiles/vsock/io_graphs).
IO_GRAPH_COLOURS = {"client to listener": (31, 119, 180), "listener to client": (255, 127, 14),
                    "bytes in flight": (44, 160, 44), "peer credit": (214, 39, 40)}

# Column widths (pixels) of the screenshots, so that the Info column shows: the
# profile's columns (profiles/vsock/preferences) as Wireshark's "recent" file names them.
COLUMN_WIDTHS = [("%m", 45), ("%t", 80), ("%s", 60), ("%d", 60), ("%p", 55), ("%L", 55),
                 ('"%Cus:vsock.stream"', 55), ('"%Cus:vsock.virtio.op"', 112), ('"%Cus:vsock.len"', 65),
                 ('"%Cus:vsock.analysis.peer_free"', 60), ('"%Cus:vsock.analysis.bytes_in_flight"', 65),
                 ("%i", 600)]

# What Wireshark must not print: GLib and Qt criticals and errors, dissector bugs.
FATAL = re.compile(r"CRITICAL|Critical|\bERROR\b|\*\* \(wireshark:\d+\): ERROR|Dissector bug|"
                   r"DISSECTOR_ASSERT|Segmentation fault|AddressSanitizer")

# Where to click, per Wireshark version, with the main window at (0, 0) and
# SCREEN in size (menu bars and dialog layouts differ between versions): the
# I/O Graphs interval box relative to its dialog; Analyze, Follow, vsock Stream
# (the last of the Follow submenu, which grows with each version).
LAYOUT = {
    "4.0": {"interval": (414, 584)},
    "4.4": {"interval": (459, 586), "follow": [(243, 8), (261, 277), (612, 497)]},
    "4.6": {"interval": (593, 586), "follow": [(243, 8), (261, 277), (612, 585)]},
}

# The screenshots the README shows: scene -> file in docs/.
DOCS = {"packet-list": "gui-packet-list.png", "details": "gui-details.png", "io-graph": "gui-io-graph.png",
        "profile-switcher": "gui-profile-switcher.png", "follow": "gui-follow.png"}


class CheckFailed(Exception):
    pass


def log(text):
    print(f"gui-check: {text}", flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs).stdout


def wireshark_abi():
    out = run(["tshark", "--version"]).decode()
    major, minor = re.search(r"TShark \(Wireshark\) (\d+)\.(\d+)", out).groups()
    return f"{major}.{minor}"


def drop_privileges():
    return os.getuid() == 0 or os.getgid() == 0


class Display:
    """An Xvfb of SCREEN size; xdotool and ImageMagick work on it."""

    def __init__(self):
        read_end, write_end = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0",
                                      f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp", "-noreset"],
                                     pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_end)
        number = b""
        while not number.endswith(b"\n"):
            chunk = os.read(read_end, 16)
            if not chunk:
                raise CheckFailed("Xvfb did not start")
            number += chunk
        os.close(read_end)
        self.name = f":{number.decode().strip()}"
        self.env = dict(os.environ, DISPLAY=self.name)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def xdotool(self, *args):
        return subprocess.run(["xdotool"] + [str(a) for a in args], env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=False).stdout.decode()

    def windows(self, pattern):
        return [int(w) for w in self.xdotool("search", "--onlyvisible", "--name", pattern).split()]

    def wait_window(self, pattern, timeout=60, proc=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.windows(pattern)
            if found:
                return found[0]
            if proc is not None and proc.poll() is not None:
                raise CheckFailed(f"Wireshark exited ({proc.returncode}) before a window {pattern!r} appeared")
            time.sleep(0.3)
        raise CheckFailed(f"no window {pattern!r} after {timeout} s")

    def geometry(self, window):
        out = self.xdotool("getwindowgeometry", "--shell", window)
        values = dict(line.split("=", 1) for line in out.split())
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])

    def pixels(self, window="root"):
        """The window's pixels as an (height, width, 3) array."""
        raw = subprocess.run(["import", "-window", str(window), "-depth", "8", "rgb:-"], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
        if window == "root":
            width, height = SCREEN
        else:
            width, height = self.geometry(window)[2:]
        return numpy.frombuffer(raw, dtype=numpy.uint8).reshape(height, width, 3)

    def settle(self, timeout=30):
        """Waits until the screen stops changing (the file loaded, the dialog drawn)."""
        deadline = time.time() + timeout
        previous = None
        while time.time() < deadline:
            time.sleep(0.7)
            now = self.pixels()
            if previous is not None and numpy.array_equal(now, previous):
                return now
            previous = now
        return previous

    def screenshot(self, path, window="root"):
        subprocess.run(["import", "-window", str(window), "-strip", path], env=self.env, check=True)

    def click(self, x, y, button=1):
        self.xdotool("mousemove", x, y, "click", button)
        time.sleep(0.4)

    def key(self, *keys):
        for k in keys:
            self.xdotool("key", k)
            time.sleep(0.3)


def text_rows(pixels):
    """How many pixel rows hold dark (text) pixels."""
    return int(numpy.any(pixels.max(axis=2) < 100, axis=1).sum())


def count(pixels, rgb):
    """Pixels of exactly this colour."""
    return int(numpy.all(pixels == numpy.array(rgb, dtype=numpy.uint8), axis=2).sum())


def count_on_white(pixels, rgb):
    """Pixels of an antialiased line of this colour on white: the colour blended
    with white at 35 % or more."""
    ink = 255.0 - pixels.astype(float)
    want = 255.0 - numpy.array(rgb, dtype=float)
    strength = (ink @ want) / (want @ want)
    direction = (ink @ want) / (numpy.linalg.norm(ink, axis=2) * numpy.linalg.norm(want) + 1e-9)
    return int(((strength >= 0.35) & (direction >= 0.98)).sum())


class Check:
    def __init__(self, build, out):
        self.build = os.path.abspath(build)
        self.out = os.path.abspath(out)
        self.abi = wireshark_abi()
        self.plugin = os.path.join(self.build, "vsock.so")
        self.profile = os.path.join(self.build, "profiles", "vsock")
        for path in (self.plugin, self.profile):
            if not os.path.exists(path):
                raise CheckFailed(f"{path} missing: build first (cmake -S . -B build && cmake --build build)")
        os.makedirs(self.out, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="vsock-gui-")
        os.chmod(self.root, 0o755)
        self.plugins = os.path.join(self.root, "plugins")
        epan = os.path.join(self.plugins, self.abi, "epan")
        os.makedirs(epan)
        system = run(["pkg-config", "--variable=plugindir", "wireshark"]).decode().strip()
        for kind in ("epan", "wiretap", "codecs"):
            os.makedirs(os.path.join(self.plugins, self.abi, kind), exist_ok=True)
            source = os.path.join(system, kind)
            for name in (os.listdir(source) if os.path.isdir(source) else []):
                if name != "vsock.so":
                    os.symlink(os.path.join(source, name), os.path.join(self.plugins, self.abi, kind, name))
        shutil.copy(self.plugin, epan)
        self.captures = os.path.join(self.root, "captures")
        shutil.copytree(os.path.join(REPO, "test-captures", "real"), self.captures)
        subprocess.run(["mergecap", "-a", "-w", os.path.join(self.captures, "refused+credit.pcap"),
                        os.path.join(self.captures, "refused.pcap"), os.path.join(self.captures, "credit.pcap")],
                       check=True)
        for dirpath, _, filenames in os.walk(self.root):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                if not os.path.islink(os.path.join(dirpath, name)):
                    os.chmod(os.path.join(dirpath, name), 0o644)
        self.display = Display()
        self.shots = []
        self.running = []

    def close(self):
        for proc in self.running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.display.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def home(self, scene, profile=True, upper_pane=None):
        """A fresh HOME: the window placed at (0, 0), no start-up warnings, the
        profile in the personal folder (unless profile is False)."""
        home = os.path.join(self.root, "home-" + scene)
        config = os.path.join(home, ".config", "wireshark")
        os.makedirs(config)
        with open(os.path.join(config, "recent_common"), "w", encoding="utf-8") as f:
            f.write("gui.geometry_main_x: 0\ngui.geometry_main_y: 0\n"
                    f"gui.geometry_main_width: {SCREEN[0]}\ngui.geometry_main_height: {SCREEN[1]}\n"
                    "gui.geometry_main_maximized: FALSE\n"
                    "privs.warn_if_elevated: FALSE\nsys.warn_if_no_capture: FALSE\n")
        if profile:
            target = os.path.join(config, "profiles", "vsock")
            shutil.copytree(self.profile, target)
            # Layout of the screenshot only (not shipped): no bytes pane, the pane split.
            with open(os.path.join(target, "recent"), "w", encoding="utf-8") as f:
                f.write("gui.byte_view_show: FALSE\n")
                if upper_pane:
                    f.write(f"gui.geometry_main_upper_pane: {upper_pane}\n")
                f.write("column.width:\n\t" + ",\n\t".join(f"{key}, {width}" for key, width in COLUMN_WIDTHS) + "\n")
        runtime = os.path.join(home, "runtime")
        os.makedirs(runtime)
        for dirpath, _, filenames in os.walk(home):
            if drop_privileges():
                os.chown(dirpath, 65534, 65534)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), 65534, 65534)
        os.chmod(runtime, 0o700)
        return home

    def start(self, scene, home, args, data_dir=None):
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "DISPLAY": self.display.name, "TZ": "UTC",
               "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": os.path.join(home, "runtime"), "QT_QPA_PLATFORM": "xcb",
               "WIRESHARK_PLUGIN_DIR": self.plugins}
        if data_dir:
            env["WIRESHARK_DATA_DIR"] = data_dir
        cmd = ["wireshark"] + args
        if drop_privileges():
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        log_path = os.path.join(self.root, f"{scene}.log")
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                    stderr=subprocess.STDOUT, cwd=self.root)
        proc.log_path = log_path
        self.running.append(proc)
        return proc

    def stop(self, scene, proc, main):
        """Quits Wireshark with Ctrl+Q and checks how it went."""
        if proc.poll() is None:
            self.display.xdotool("windowfocus", main)
            self.display.key("ctrl+q")
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise CheckFailed(f"{scene}: Wireshark did not quit on Ctrl+Q")
        with open(proc.log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        bad = [line for line in text.splitlines() if FATAL.search(line)]
        if proc.returncode != 0 or bad:
            raise CheckFailed(f"{scene}: Wireshark exited {proc.returncode}; output:\n{text[-4000:]}")

    def shot(self, scene, window="root"):
        path = os.path.join(self.out, f"{scene}-{self.abi}.png")
        self.display.screenshot(path, window)
        self.shots.append((scene, path))
        log(f"{scene}: {path}")
        return path

    def open_capture(self, scene, capture, extra=(), upper_pane=None, data_dir=None, profile=True, args=None):
        home = self.home(scene, profile=profile, upper_pane=upper_pane)
        if args is None:
            args = ["-C", "vsock"]
        proc = self.start(scene, home, args + ["-r", os.path.join(self.captures, capture)] + list(extra),
                          data_dir=data_dir)
        main = self.display.wait_window(f"^{re.escape(capture)}", proc=proc)
        self.display.xdotool("windowmove", main, 0, 0)
        self.display.xdotool("windowsize", main, *SCREEN)
        self.display.xdotool("mousemove", SCREEN[0] - 2, SCREEN[1] // 2)    # no hover highlight
        pixels = self.display.settle()
        return proc, main, pixels

    def expect_rows(self, scene, pixels, rows):
        for name, rgb in rows.items():
            n = count(pixels, rgb)
            if n < 1000:
                raise CheckFailed(f"{scene}: {n} pixels of the {name} row colour {rgb}, expected a row's worth")

    # ---- scenes

    def packet_list(self):
        proc, main, pixels = self.open_capture("packet-list", "refused+credit.pcap", upper_pane=820)
        self.expect_rows("packet-list", pixels, {"refused RST": ROW_REFUSED, "credit stall": ROW_STALL,
                                                 "payload": ROW_PAYLOAD, "control": ROW_CONTROL,
                                                 "connect/shutdown": ROW_CONNECT})
        self.shot("packet-list")
        self.stop("packet-list", proc, main)

    def details(self):
        proc, main, before = self.open_capture("details", "credit.pcap", ["-g", "4"], upper_pane=160)
        # Focus the details tree, select the vsock item, expand its subtrees.
        self.display.click(SCREEN[0] // 2, SCREEN[1] - 60)
        self.display.key("Home", "Down", "shift+Right")
        after = self.display.settle()
        # Frame, vSocket and Data are three lines of text; expanded, vSocket fills the pane.
        lines_before, lines_after = text_rows(before[300:]), text_rows(after[300:])
        if lines_after < 5 * max(lines_before, 1):
            raise CheckFailed(f"details: the tree did not expand ({lines_before} -> {lines_after} rows of text)")
        self.shot("details")
        self.stop("details", proc, main)

    def follow(self):
        if self.abi == "4.0":
            log("follow: Wireshark 4.0's Follow menu lists no vsock Stream (tshark -z follow,vsock,... instead)")
            return
        clicks = LAYOUT.get(self.abi, {}).get("follow")
        if not clicks:
            raise CheckFailed(f"follow: no menu positions known for Wireshark {self.abi}")
        proc, main, _ = self.open_capture("follow", "stream_basic.pcap", ["-g", "3"], upper_pane=400)
        for x, y in clicks:
            self.display.click(x, y)
        dialog = self.display.wait_window("Follow vsock Stream", timeout=20)
        self.display.xdotool("windowsize", dialog, 900, 360)
        self.display.settle()
        text = self.display.pixels(dialog)
        # Follow's colours: the client's bytes on light red, the server's on light blue.
        for side, rgb in (("client", FOLLOW_CLIENT), ("server", FOLLOW_SERVER)):
            if count(text, rgb) < 500:
                raise CheckFailed(f"follow: no {side} text (background {rgb}) in the Follow dialog")
        self.shot("follow", dialog)
        self.stop("follow", proc, main)

    def io_graph(self):
        proc, main, _ = self.open_capture("io-graph", "credit.pcap", ["-z", "io,stat"])
        dialog = self.display.wait_window("I/O Graphs", timeout=30)
        x, y, width, height = self.display.geometry(dialog)
        spot = LAYOUT.get(self.abi, {}).get("interval")
        if not spot:
            raise CheckFailed(f"io-graph: no interval box position known for Wireshark {self.abi}")
        # 1 s (the default) to 10 ms: six wheel steps up the interval list.
        self.display.xdotool("mousemove", x + spot[0], y + spot[1])
        for _ in range(6):
            self.display.xdotool("click", 4)
            time.sleep(0.2)
        self.display.xdotool("mousemove", x + width // 2, y + 5)
        self.display.settle()
        plot = self.display.pixels(dialog)[: int(height * 0.7)]
        for name, rgb in IO_GRAPH_COLOURS.items():
            if name == "listener to client":
                continue    # 12 bytes in one interval: a line along zero, under the others
            n = count_on_white(plot, rgb)
            if n < 150:
                raise CheckFailed(f"io-graph: {n} pixels of the '{name}' graph colour {rgb}")
        self.shot("io-graph", dialog)
        self.stop("io-graph", proc, main)

    def global_profile(self):
        """The profile as `cmake --install` installs it, found as a global profile."""
        destdir = os.path.join(self.root, "destdir")
        subprocess.run(["cmake", "--install", self.build], env=dict(os.environ, DESTDIR=destdir), check=True,
                       stdout=subprocess.DEVNULL)
        data_dir = [line.split(":\t", 1)[1].strip() for line in run(["tshark", "-G", "folders"]).decode().splitlines()
                    if line.startswith("Global configuration:")][0]
        installed = destdir + os.path.join(data_dir, "profiles", "vsock")
        if not os.path.isfile(os.path.join(installed, "colorfilters")):
            raise CheckFailed(f"global-profile: cmake --install put no profile in {installed}")
        farm = os.path.join(self.root, "data")
        os.makedirs(os.path.join(farm, "profiles"))
        for name in os.listdir(data_dir):
            if name != "profiles":
                os.symlink(os.path.join(data_dir, name), os.path.join(farm, name))
        for name in os.listdir(os.path.join(data_dir, "profiles")):
            os.symlink(os.path.join(data_dir, "profiles", name), os.path.join(farm, "profiles", name))
        os.symlink(installed, os.path.join(farm, "profiles", "vsock"))
        for dirpath, _, _ in os.walk(destdir):
            os.chmod(dirpath, 0o755)
        # Start in the Default profile: no vsock colours.
        proc, main, pixels = self.open_capture("global-profile", "refused.pcap", data_dir=farm, profile=False,
                                               args=[])
        if count(pixels, ROW_REFUSED):
            raise CheckFailed("global-profile: the Default profile already colours vsock rows")
        # The status bar's profile switcher, bottom right: a left click lists the
        # profiles, global ones (italic) after the personal ones; vsock sorts last.
        self.display.click(SCREEN[0] - 60, SCREEN[1] - 12)
        menu = self.display.settle()
        if numpy.array_equal(menu, pixels):
            raise CheckFailed("global-profile: clicking the status bar's profile label opened nothing")
        self.shot("global-profile")
        # The switcher alone, for the README.
        path = os.path.join(self.out, f"profile-switcher-{self.abi}.png")
        subprocess.run(["convert", self.shots[-1][1], "-crop", f"520x300+{SCREEN[0] - 520}+{SCREEN[1] - 300}",
                        "+repage", path], check=True)
        self.shots.append(("profile-switcher", path))
        self.display.key("Up", "Return")
        switched = self.display.settle()
        self.expect_rows("global-profile", switched, {"refused RST": ROW_REFUSED, "connect": ROW_CONNECT})
        log("global-profile: switched to the global vsock profile from the status bar: its colours apply")
        self.stop("global-profile", proc, main)


    def stream_graph_doc(self, docs):
        """docs/stream-graph-credit.png: the real credit capture's first 0.1 s, drawn by
        tools/vsock-stream-graph through a tshark that loads the plugin under test."""
        work = os.path.join(self.root, "stream-graph")
        os.makedirs(work)
        tool = os.path.join(work, "vsock-stream-graph")
        shutil.copy(os.path.join(REPO, "tools", "vsock-stream-graph"), tool)
        os.chmod(tool, 0o755)
        if drop_privileges():
            os.chown(work, 65534, 65534)
        cmd = [tool, os.path.join(self.captures, "credit.pcap"), "--stream", "0", "--time", "0:0.1",
               "-o", os.path.join(work, "stream-graph-credit.png")]
        if drop_privileges():
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        subprocess.run(cmd, check=True, env={"PATH": "/usr/bin:/bin", "HOME": work, "MPLCONFIGDIR": work,
                                             "WIRESHARK_PLUGIN_DIR": self.plugins})
        shutil.copy(os.path.join(work, "stream-graph-credit.png"), docs)
        log("docs/stream-graph-credit.png from real/credit.pcap")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(REPO, "build"), help="build folder (default: build)")
    parser.add_argument("--out", help="screenshot folder (default: BUILD/gui-check)")
    parser.add_argument("--docs", action="store_true", help="also refresh the README's pictures in docs/")
    parser.add_argument("--scene", action="append", help="only this scene (repeatable)")
    args = parser.parse_args()
    started = time.time()
    check = None
    try:
        check = Check(args.build, args.out or os.path.join(args.build, "gui-check"))
        log(f"Wireshark {check.abi} on display {check.display.name}")
        scenes = {"packet-list": check.packet_list, "details": check.details, "follow": check.follow,
                  "io-graph": check.io_graph, "global-profile": check.global_profile}
        for name in args.scene or scenes:
            scenes[name]()
        if args.docs:
            docs = os.path.join(REPO, "docs")
            os.makedirs(docs, exist_ok=True)
            for scene, path in check.shots:
                if scene in DOCS:
                    # 256 colours, no dithering: the same picture at a third of the size.
                    subprocess.run(["convert", path, "-strip", "-dither", "None", "-colors", "256",
                                    "PNG8:" + os.path.join(docs, DOCS[scene])], check=True)
                    log(f"docs/{DOCS[scene]} from {os.path.basename(path)}")
            if not args.scene:
                check.stream_graph_doc(docs)
    except (CheckFailed, subprocess.CalledProcessError) as e:
        print(f"gui-check: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if check:
            check.close()
    log(f"OK ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
