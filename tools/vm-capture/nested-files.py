#!/usr/bin/env python3
"""List the files of the nested guest's small root (relative to ROOT, parents first), for cpio.

The nested guest runs under TCG inside the TCG capture VM, where every megabyte of initramfs
costs seconds, so it gets only what guest-main.sh and capture.py --role nested use.
    nested-files.py ROOT > list
"""
import os
import subprocess
import sys

root = sys.argv[1]
BINS = ["sh", "dash", "mount", "umount", "mkdir", "hostname", "ip", "ss", "cat", "modprobe",
        "kmod", "sync", "sleep", "cut", "date", "sed", "python3", "python3.11", "tcpdump", "uname"]
SKIP_PY = {"test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "turtledemo",
           "distutils", "unittest", "sqlite3", "config-3.11-x86_64-linux-gnu", "venv", "asyncio",
           "multiprocessing", "xml", "xmlrpc", "curses", "dbm", "wsgiref", "tomllib", "zoneinfo"}
SKIP_SO = ("_sqlite3", "_dbm", "_gdbm", "_curses", "_tkinter", "_decimal", "_lzma", "_bz2",
           "readline", "_codecs_", "_multibytecodec", "_test", "_ctypes_test", "xxlimited", "xx",
           "audioop", "_elementtree", "pyexpat", "_ssl", "_uuid", "nis", "_crypt")
MERGED = ("bin/", "sbin/", "lib/", "lib64/")  # /bin -> usr/bin and so on (merged /usr)

files = {"init", "etc/passwd", "etc/group", "etc/ld.so.cache", "etc/hostname", "etc/nsswitch.conf",
         "bin", "sbin", "lib", "lib64", "dev", "proc", "sys", "run", "tmp", "mnt", "root"}
elves = []


def add(rel):
    """Add a path, following symlinks to their targets."""
    if rel.startswith(MERGED):
        rel = "usr/" + rel
    while rel and rel not in files or rel in ("bin", "sbin", "lib", "lib64"):
        files.add(rel)
        p = os.path.join(root, rel)
        if not os.path.islink(p):
            break
        t = os.readlink(p)
        rel = os.path.normpath(t.lstrip("/") if t.startswith("/") else os.path.join(os.path.dirname(rel), t))
        if rel.startswith(MERGED):
            rel = "usr/" + rel
        if rel in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64"):
            break


for b in BINS:
    for d in ("usr/bin", "usr/sbin"):
        if os.path.lexists(os.path.join(root, d, b)):
            add(os.path.join(d, b))
            elves.append(os.path.join(d, b))
for d, dirs, fs in os.walk(os.path.join(root, "usr/lib/python3.11")):
    rel = os.path.relpath(d, root)
    if rel == "usr/lib/python3.11":
        dirs[:] = [x for x in dirs if x not in SKIP_PY]
    for f in fs:
        if f.endswith(".so") and f.startswith(SKIP_SO):
            continue
        add(os.path.join(rel, f))
        if f.endswith(".so"):
            elves.append(os.path.join(rel, f))
for d, _, fs in os.walk(os.path.join(root, "usr/lib/modules")):
    for f in fs:
        if not f.startswith(("kvm", "vhost", "ccp", "irqbypass")):
            files.add(os.path.join(os.path.relpath(d, root), f))
# Shared libraries of everything above, resolved by the root's own loader.
for e in elves:
    out = subprocess.run(["chroot", root, "ldd", "/" + e], capture_output=True, text=True).stdout
    for line in out.splitlines():
        for w in line.split():
            if w.startswith("/"):
                add(os.path.normpath(w.lstrip("/")))
# Parents first, so the kernel's unpacker can create each entry.
allp = set()
for f in files:
    parts = f.split("/")
    for i in range(1, len(parts) + 1):
        allp.add("/".join(parts[:i]))
for f in sorted(allp, key=lambda x: (x.count("/"), x)):
    if os.path.lexists(os.path.join(root, f)):
        print("./" + f)
