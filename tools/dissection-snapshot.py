#!/usr/bin/env python3
"""Writes what the plugin shows for every test capture, to compare two builds.

    tools/dissection-snapshot.py PLUGIN.so OUTDIR [--abi 4.0] [--extra ARGS]

Per capture under test-captures/ it writes, for one pass and for two (-2):
NAME.info (frame number and Info column), NAME.V (tshark -V: every field,
expert info and generated item as text), NAME.pdml (every field with its
value, hidden ones included; the capture's file name and timestamps removed),
NAME.fields (every vsock field and the expert messages, tshark -T fields:
from 4.2 on a tree that holds only what is asked for) and NAME.experts (the
frames a filter on any expert info matches: a tree that is not shown). `diff -r OLD NEW` then shows every
change a build makes to what users see. tshark runs as in the tests (uid
65534 when started as root, plugin from the given file).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from vsocktest import CAPTURES, Tshark  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plugin")
    parser.add_argument("outdir")
    parser.add_argument("--abi", default="4.0")
    parser.add_argument("--extra", default="", help="more tshark arguments, space-separated")
    args = parser.parse_args()
    tshark = Tshark(os.path.abspath(args.plugin), args.abi)
    extra = args.extra.split()
    fields = []
    for name in sorted(tshark.plugin_fields()) + ["_ws.expert.message"]:
        fields += ["-e", name]
    try:
        for dirpath, _, names in sorted(os.walk(CAPTURES)):
            for name in sorted(n for n in names if n.endswith(".pcap")):
                rel = os.path.relpath(os.path.join(dirpath, name), CAPTURES)
                capture = tshark.capture(rel)
                base = os.path.join(args.outdir, rel[:-len(".pcap")])
                os.makedirs(os.path.dirname(base), exist_ok=True)
                for suffix, passes in (("", []), (".2pass", ["-2"])):
                    info = tshark.run(["-r", capture, "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info"]
                                      + passes + extra, check=False)[1]
                    detail = tshark.run(["-r", capture, "-V"] + passes + extra, check=False)[1]
                    pdml = tshark.run(["-r", capture, "-T", "pdml"] + passes + extra, check=False)[1]
                    # The header names the temporary copy and when it was made.
                    pdml = "\n".join(line for line in pdml.splitlines()
                                     if not line.startswith(("<pdml ", "<?xml-stylesheet")))
                    values = tshark.run(["-r", capture, "-T", "fields", "-E", "occurrence=a"] + fields
                                        + passes + extra, check=False)[1]
                    experts = tshark.run(["-r", capture, "-Y", "_ws.expert"] + passes + extra, check=False)[1]
                    with open(base + suffix + ".fields", "w") as f:
                        f.write(values)
                    with open(base + suffix + ".experts", "w") as f:
                        f.write(experts)
                    with open(base + suffix + ".info", "w") as f:
                        f.write(info)
                    with open(base + suffix + ".V", "w") as f:
                        f.write(detail)
                    with open(base + suffix + ".pdml", "w") as f:
                        f.write(pdml)
    finally:
        tshark.cleanup()


if __name__ == "__main__":
    main()
