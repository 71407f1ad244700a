#!/usr/bin/env python3
"""Benchmark tshark with the vsock plugin against tshark with the built-in dissector.

    bench/run.py --capture /tmp/vsock-100k.pcap [--capture /tmp/vsock-1m.pcap]
                 [--plugin build/vsock.so] [--runs 5] [--json results.json]

For each capture and each workload, the two tsharks run in turn (plugin,
built-in, plugin, built-in, ...; the order flips every round so neither always
runs second) on the same capture, output to /dev/null:

  read     tshark -n -r F                       (summary lines)
  filter   tshark -n -r F -Y 'vsock.op == 4'
  fields   tshark -n -r F -T fields -e vsock.virtio.len -e vsock.src_port
  fields-stream
           tshark -n -r F -T fields -e vsock.stream -e vsock.len (the
           built-in has neither field: it runs the fields workload)
  read-nohttp, filter-nohttp
           the same two with --disable-protocol http: the vsock layer
           without the HTTP dissector's own cost (the built-in decodes no
           application protocol)
  detail   tshark -n -r F -V
  twopass  tshark -n -r F -2
  floor    tshark -n -r F --disable-protocol vsock (no plugin): reading the
           file and the frame layer only, the least any vsock dissector costs

"plugin" is tshark with WIRESHARK_PLUGIN_DIR holding only vsock.so; "built-in"
is tshark with WIRESHARK_PLUGIN_DIR pointing at an empty folder. Both run as
nobody (tshark ignores WIRESHARK_PLUGIN_DIR for root), with the same
environment. Each run's wall time is measured around the process, CPU time
and peak RSS come from the kernel's accounting of the finished child
(os.wait4). Reported: the median of each, the median of the per-round
plugin/built-in ratios, and with two captures the growth of peak RSS per
packet between them.

Standard library only; not part of the test suite.
"""

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

WORKLOADS = {
    "read": ([], []),
    "filter": (["-Y", "vsock.op == 4"], ["-Y", "vsock.op == 4"]),
    # Field extraction: two header fields (the same arguments for both), and
    # the plugin's stream index and payload length (the built-in has neither:
    # it extracts two header fields).
    "fields": (["-T", "fields", "-e", "vsock.virtio.len", "-e", "vsock.src_port"],
               ["-T", "fields", "-e", "vsock.virtio.len", "-e", "vsock.src_port"]),
    "fields-stream": (["-T", "fields", "-e", "vsock.stream", "-e", "vsock.len"],
                      ["-T", "fields", "-e", "vsock.virtio.len", "-e", "vsock.src_port"]),
    # The same without the HTTP dissector: what the vsock layer itself costs
    # (the built-in decodes no application protocol; the plugin hands 10 % of
    # the connections to HTTP).
    "read-nohttp": (["--disable-protocol", "http"], ["--disable-protocol", "http"]),
    "filter-nohttp": (["--disable-protocol", "http", "-Y", "vsock.op == 4"],
                      ["--disable-protocol", "http", "-Y", "vsock.op == 4"]),
    "detail": (["-V"], ["-V"]),
    "twopass": (["-2"], ["-2"]),
}


def count_packets(path):
    n = 0
    with open(path, "rb") as f:
        head = f.read(24)
        endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            caplen = struct.unpack(endian + "I", rec[8:12])[0]
            f.seek(caplen, 1)
            n += 1
    return n


class Setup:
    def __init__(self, plugin, abi):
        self.root = tempfile.mkdtemp(prefix="vsock-bench-")
        self.with_plugin = os.path.join(self.root, "plugins")
        os.makedirs(os.path.join(self.with_plugin, abi, "epan"))
        shutil.copy(plugin, os.path.join(self.with_plugin, abi, "epan", "vsock.so"))
        self.without = os.path.join(self.root, "no-plugins")
        os.makedirs(self.without)
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.home)
        for dirpath, _, files in os.walk(self.root):
            os.chmod(dirpath, 0o777 if dirpath == self.home else 0o755)
            for name in files:
                os.chmod(os.path.join(dirpath, name), 0o644)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def run(self, args, plugin, timeout):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "TZ": "UTC",
               "LC_ALL": "C.UTF-8", "WIRESHARK_PLUGIN_DIR": self.with_plugin if plugin else self.without}
        cmd = ["tshark"] + args
        if os.getuid() == 0 or os.getgid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
        with open(os.devnull, "wb") as null:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, stdout=null, stderr=subprocess.PIPE)
            # the child's own resource usage (setpriv execs tshark: same process)
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"tshark {' '.join(args)} exited {code}:\n{err[-2000:]}")
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kib": ru.ru_maxrss}


def median(values):
    return statistics.median(values) if values else float("nan")


def bench_capture(setup, capture, workloads, runs, timeout, log):
    packets = count_packets(capture)
    results = {}
    for name in workloads:
        if name == "floor":
            variants = {"floor": ["--disable-protocol", "vsock"]}
        else:
            plugin_args, builtin_args = WORKLOADS[name]
            variants = {"plugin": plugin_args, "builtin": builtin_args}
        samples = {v: [] for v in variants}
        order = list(variants)
        for r in range(runs):
            for v in (order if r % 2 == 0 else order[::-1]):
                s = setup.run(["-n", "-r", capture] + variants[v], plugin=(v == "plugin"), timeout=timeout)
                samples[v].append(s)
                log(f"  {os.path.basename(capture)} {name:13s} {v:8s} run {r + 1}: "
                    f"{s['wall']:.2f} s wall, {s['cpu']:.2f} s cpu, {s['rss_kib'] / 1024:.0f} MiB")
        entry = {"packets": packets}
        for v, ss in samples.items():
            entry[v] = {"wall_median": median([s["wall"] for s in ss]),
                        "cpu_median": median([s["cpu"] for s in ss]),
                        "rss_kib_max": max(s["rss_kib"] for s in ss),
                        "rss_kib_median": median([s["rss_kib"] for s in ss]),
                        "samples": ss}
        if "plugin" in samples:
            entry["ratio_wall"] = median([p["wall"] / b["wall"] for p, b in zip(samples["plugin"], samples["builtin"])])
            entry["ratio_cpu"] = median([p["cpu"] / b["cpu"] for p, b in zip(samples["plugin"], samples["builtin"])])
        results[name] = entry
    return {"capture": capture, "packets": packets, "bytes": os.path.getsize(capture), "workloads": results}


def table(all_results):
    lines = []
    hdr = ("| capture | workload | plugin wall s | built-in wall s | ratio wall | plugin cpu s | "
           "built-in cpu s | ratio cpu | plugin peak RSS MiB | built-in peak RSS MiB |")
    lines.append(hdr)
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in all_results:
        cap = f"{res['packets'] // 1000}k" if res["packets"] < 1_000_000 else f"{res['packets'] / 1e6:g}M"
        for name, e in res["workloads"].items():
            if name == "floor":
                f = e["floor"]
                lines.append(f"| {cap} | floor (vsock disabled) | | {f['wall_median']:.2f} | | | "
                             f"{f['cpu_median']:.2f} | | | {f['rss_kib_max'] / 1024:.0f} |")
                continue
            p, b = e["plugin"], e["builtin"]
            lines.append(f"| {cap} | {name} | {p['wall_median']:.2f} | {b['wall_median']:.2f} | "
                         f"{e['ratio_wall']:.2f} | {p['cpu_median']:.2f} | {b['cpu_median']:.2f} | "
                         f"{e['ratio_cpu']:.2f} | {p['rss_kib_max'] / 1024:.0f} | {b['rss_kib_max'] / 1024:.0f} |")
    return "\n".join(lines)


def growth(all_results):
    if len(all_results) < 2:
        return ""
    a, b = all_results[0], all_results[-1]
    dp = b["packets"] - a["packets"]
    if dp <= 0:
        return ""
    lines = [f"Peak RSS growth from {a['packets']} to {b['packets']} packets (bytes per packet):", "",
             "| workload | plugin | built-in |", "|---|---:|---:|"]
    for name in a["workloads"]:
        if name not in b["workloads"]:
            continue
        cells = []
        for v in ("plugin", "builtin") if name != "floor" else ("floor",):
            d = (b["workloads"][name][v]["rss_kib_max"] - a["workloads"][name][v]["rss_kib_max"]) * 1024
            cells.append(f"{d / dp:.0f}")
        if name == "floor":
            lines.append(f"| floor (vsock disabled) | | {cells[0]} |")
        else:
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", action="append", required=True, help="may be given twice (e.g. 100k and 1M)")
    ap.add_argument("--plugin", default=os.path.join(os.path.dirname(here), "build", "vsock.so"))
    ap.add_argument("--abi", default=None)
    ap.add_argument("--runs", type=int, default=5, help="rounds per workload (default 5)")
    ap.add_argument("--workloads", default="read,filter,read-nohttp,filter-nohttp,fields,fields-stream,detail,twopass,floor")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    if args.abi is None:
        out = subprocess.run(["tshark", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             check=True).stdout.decode()
        args.abi = ".".join(out.split("(Wireshark) ")[1].split(".")[:2])
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS and w != "floor":
            ap.error(f"unknown workload {w}")

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    setup = Setup(args.plugin, args.abi)
    try:
        results = []
        for capture in args.capture:
            capture = os.path.abspath(capture)
            results.append(bench_capture(setup, capture, workloads, args.runs, args.timeout, log))
    finally:
        setup.cleanup()
    print(f"tshark {args.abi}, plugin {args.plugin}, {args.runs} rounds, medians; "
          f"ratio = median of per-round plugin/built-in; peak RSS = largest of the rounds")
    print()
    print(table(results))
    g = growth(results)
    if g:
        print()
        print(g)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
