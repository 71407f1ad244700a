#!/bin/bash
# Regenerates the README's pictures in docs/ with tools/gui-check.py: on this
# host's Wireshark (Debian 12: 4.0) every scene and the stream graph, and the
# Follow vsock Stream dialog, which Wireshark lists from 4.2 on, in the sid
# chroot that tools/chroot-test.sh made (4.6).
#
#   tools/gui-docs.sh            (as root; build/ must be built)
#
#   CHROOT_DIR   the 4.2+ chroot (default /var/cache/wireshark-vsock/chroot-sid)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
root=${CHROOT_DIR:-/var/cache/wireshark-vsock/chroot-sid}
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (chroot)" >&2; exit 1; }
[ -x "$root/usr/bin/wireshark" ] ||
    { echo "$0: no Wireshark GUI in $root: run tools/chroot-test.sh sid first" >&2; exit 1; }

"$src/tools/gui-check.py" --build "$src/build" --docs

# A private copy in the chroot (tools/chroot-test.sh owns $root/work).
work=$root/work-gui-docs
rm -rf "$work"
mkdir -p "$work/src"
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) |
    tar -C "$work/src" -xf -
chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -euc '
    cd /work-gui-docs
    cmake -S src -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
    chmod -R a+rX /work-gui-docs
    python3 src/tools/gui-check.py --build build --out /work-gui-docs/out --scene follow
'
convert "$work"/out/follow-*.png -strip -dither None -colors 256 "PNG8:$src/docs/gui-follow.png"
echo "gui-docs: docs/gui-follow.png from $(basename "$work"/out/follow-*.png)"
rm -rf "$work"
