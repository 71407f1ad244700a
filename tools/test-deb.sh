#!/bin/bash
# Build the Debian package with CPack, install it, check that root's tshark
# loads it from the system plugin folder and lists the extcap's interface,
# remove it, and check that the built-in vsock dissector is back and the
# interface gone.
#
#   tools/test-deb.sh [BUILD_DIR]     (default BUILD_DIR: ./build-deb)
#
# Installs into the running system, so it needs root and is best run in a
# throw-away chroot: tools/chroot-test.sh SUITE --deb. Needs cmake, gcc,
# dpkg-dev (dpkg-shlibdeps), file, wireshark-dev, tshark and python3-matplotlib.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
pkg=wireshark-vsock
field=vsock.virtio.flags.seq_eom   # registered by the plugin only

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i)"
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep " installed$" >/dev/null; then
    fail "$pkg is already installed; remove it first"
fi

# Root's tshark reads only the system plugin folder, which is what we test.
has_field()  { tshark -G fields 2>/dev/null | cut -f3 | grep -x "$field" >/dev/null; }
# `tshark -C vsock` with an empty personal folder: it finds the global profile
# (and copies it into the personal folder), or says it does not exist.
scratch=$(mktemp -d)
profile_run() { HOME=$(mktemp -d -p "$scratch") tshark -C vsock "$@"; }
plugin_rows() { tshark -G plugins 2>/dev/null | awk -F'\t' '{ sub(/ +$/, "", $1) } $1 == "vsock.so"'; }

has_field && fail "$field exists before installing: the test would prove nothing"
profile_run -r "$src/test-captures/real/refused.pcap" >/dev/null 2>&1 &&
    fail "a vsock configuration profile exists before installing"
[ -z "$(plugin_rows)" ] || fail "a vsock.so plugin is already loaded: $(plugin_rows)"

# The extcap: tshark -D lists its interface, from the extcap folder tshark
# reports ("Extcap path" on 4.0, "Global Extcap path" from 4.2 on).
extcap=vsockhybriddump
interface=vsockhybrid
lists_interface() { tshark -D 2>/dev/null | grep -E "^[0-9]+\. $interface " >/dev/null; }
extcapdir=$(tshark -G folders 2>/dev/null | awk -F'\t' '$1 ~ /^(Global )?Extcap path:/ {print $2; exit}')
[ -n "$extcapdir" ] || fail "tshark -G folders names no extcap folder"
lists_interface && fail "tshark -D lists $interface before installing: the test would prove nothing"

echo "== build and package"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
rm -f "$build"/"$pkg"_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/"$pkg"_*.deb)
if [ ${#debs[@]} != 1 ] || [ ! -f "${debs[0]}" ]; then fail "expected one $pkg .deb in $build"; fi
deb=${debs[0]}
echo "$(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"

# The plugin goes to Wireshark's own folder: .../plugins/X.Y/epan/vsock.so.
plugindir=$(pkg-config --variable=plugindir wireshark)
dpkg-deb -c "$deb" | awk '{print $NF}' | grep -x ".$plugindir/epan/vsock.so" >/dev/null ||
    fail "$deb does not hold $plugindir/epan/vsock.so"

# Depends names the package of the libwireshark soname the plugin links.
so=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ".$plugindir/epan/vsock.so" |
     { tmp=$(mktemp); cat >"$tmp"; objdump -p "$tmp" | awk '$1 == "NEEDED" && $2 ~ /^libwireshark\.so/ {print $2}'; rm -f "$tmp"; })
[ -n "$so" ] || fail "vsock.so does not link libwireshark"
libpkg=$(dpkg -S "*/$so" | head -n1 | cut -d: -f1)
dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep "^ *$libpkg\b" >/dev/null ||
    fail "Depends lacks $libpkg (package of $so)"

# The extcap goes to the extcap folder tshark uses, executable; it needs python3.
dpkg-deb -c "$deb" | awk '$1 == "-rwxr-xr-x" {print $NF}' | grep -x ".$extcapdir/$extcap" >/dev/null ||
    fail "$deb does not hold an executable $extcapdir/$extcap"
dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep "^ *python3\b" >/dev/null || fail "Depends lacks python3"

cleanup() { dpkg -r "$pkg" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The profile goes to Wireshark's global profiles folder, the graph tool to /usr/bin.
datadir=$(tshark -G folders 2>/dev/null | awk -F'\t' '$1 == "Global configuration:" {print $2}')
for f in "$datadir/profiles/vsock/"{colorfilters,dfilter_buttons,io_graphs,preferences} \
         /usr/bin/vsock-stream-graph /usr/share/doc/wireshark-vsock/vsock-colorfilters; do
    dpkg-deb -c "$deb" | awk '{print $NF}' | grep -x ".$f" >/dev/null || fail "$deb does not hold $f"
done

echo "== install"
dpkg -i "$deb" >/dev/null
row=$(plugin_rows)
[ -n "$row" ] || fail "tshark -G plugins does not list vsock.so after install"
echo "$row"
echo "$row" | grep -F "$plugindir/epan/vsock.so" >/dev/null || fail "vsock.so loaded from elsewhere"
has_field || fail "$field missing after install"
lists_interface || fail "tshark -D does not list $interface after install"
tshark -D 2>/dev/null | grep -E "^[0-9]+\. $interface "

# Root's tshark finds the installed profile: its columns, and its colouring
# rules (--color names the rule that coloured each frame; no terminal needed).
columns=$(profile_run -r "$src/test-captures/real/credit.pcap" -T psml -c 1 |
          sed -n 's|^<section>\(.*\)</section>$|\1|p' | head -n 12 | tr '\n' '|')
[ "$columns" = "No.|Time|Source|Destination|Protocol|Length|Stream|Op|Payload|Credit|In flight|Info|" ] ||
    fail "tshark -C vsock: columns are $columns"
rules=$(profile_run --color -r "$src/test-captures/real/refused.pcap" -T fields -e frame.coloring_rule.name | tr '\n' '|')
want="vsock connect/shutdown|vsock refused or reset|"
[ "$rules" = "$want$want$want" ] || fail "tshark -C vsock --color on refused.pcap: rules $rules"
echo "tshark -C vsock: the installed profile's columns and colouring rules"

# The stream graph tool, through root's tshark and the installed plugin.
png=$scratch/credit.png
MPLCONFIGDIR=$scratch vsock-stream-graph "$src/test-captures/real/credit.pcap" --stream 0 -o "$png" ||
    fail "vsock-stream-graph failed"
[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "vsock-stream-graph wrote no PNG"
echo "vsock-stream-graph: $(stat -c %s "$png") bytes of PNG"

echo "== remove"
dpkg -r "$pkg" >/dev/null
trap - EXIT
[ -z "$(plugin_rows)" ] || fail "vsock.so still loaded after removal"
has_field && fail "$field still registered after removal"
profile_run -r "$src/test-captures/real/refused.pcap" >/dev/null 2>&1 && fail "the vsock profile is still there after removal"
[ ! -e /usr/bin/vsock-stream-graph ] || fail "vsock-stream-graph still installed after removal"
lists_interface && fail "tshark -D still lists $interface after removal"
tshark -G protocols 2>/dev/null | cut -f3 | grep -x vsock >/dev/null || fail "built-in vsock protocol is gone"
rm -rf "$scratch"
echo "test-deb: OK ($libpkg)"
