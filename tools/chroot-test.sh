#!/bin/bash
# Build the plugin with -Werror and run its whole test suite inside a Debian
# chroot, so one source tree is checked against Wireshark 4.0 (bookworm),
# 4.4 (trixie) and 4.6 (sid) on a single bookworm host.
#
#   tools/chroot-test.sh SUITE [--deb]      SUITE: bookworm | trixie | sid
#
# Needs root (installs debootstrap if missing). The chroot is cached and reused:
#   CHROOT_CACHE   cache folder (default /var/cache/wireshark-vsock)
#   CHROOT_DIR     chroot folder (default $CHROOT_CACHE/chroot-SUITE)
#   DEBIAN_MIRROR  mirror URL (default: the host's apt mirror)
#   VSOCK_*        passed to the tests in the chroot (e.g. VSOCK_FUZZ_SECONDS=30)
# --deb additionally runs tools/test-deb.sh in the chroot (build the .deb,
# install it, check tshark sees it, remove it).
set -euo pipefail

usage() { echo "usage: $0 bookworm|trixie|sid [--deb]" >&2; exit 2; }
[ $# -ge 1 ] || usage
suite=$1; shift
case $suite in bookworm|trixie|sid) ;; *) usage ;; esac
run_deb=0
for arg; do
    case $arg in --deb) run_deb=1 ;; *) usage ;; esac
done
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (debootstrap, chroot)" >&2; exit 1; }
# A fresh CI machine has no debootstrap yet.
command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null

src=$(cd "$(dirname "$0")/.." && pwd)
cache=${CHROOT_CACHE:-/var/cache/wireshark-vsock}
root=${CHROOT_DIR:-$cache/chroot-$suite}

# Everything the build, the test suite and the .deb test need.
packages=(
    wireshark-dev libwireshark-dev libglib2.0-dev tshark
    cmake make gcc pkg-config dpkg-dev file
    python3 python3-pytest util-linux socat curl
    python3-matplotlib wireshark xvfb xdotool imagemagick fonts-dejavu-core
)

# The host's Debian mirror (the only one reachable), from deb822 or one-line sources.
host_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f"
    done
    awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true
}
mirror=${DEBIAN_MIRROR:-$(host_mirror | head -n1)}
[ -n "$mirror" ] || { echo "$0: no Debian mirror found; set DEBIAN_MIRROR" >&2; exit 1; }

# A clean environment, but the suite's own knobs (VSOCK_FUZZ_SECONDS, ...) pass.
vsock_env=()
for v in $(compgen -e | grep '^VSOCK_' || true); do vsock_env+=("$v=${!v}"); done
in_chroot() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive "${vsock_env[@]}" "$@"
}

# Refuse to touch a chroot that still has something mounted in it.
assert_unmounted() {
    if findmnt -rn -o TARGET | grep "^$1/" >/dev/null; then
        echo "$0: something is mounted under $1; unmount it first" >&2
        exit 1
    fi
}

# One run per chroot at a time (runs share its /work folder and dpkg state).
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

# 1. Base system. debootstrap works in a temporary folder that is renamed when
#    it finishes, so an existing $root is always a complete bootstrap.
if [ ! -d "$root" ]; then
    assert_unmounted "$root.tmp"
    rm -rf "$root.tmp"
    echo "== debootstrap $suite from $mirror"
    debootstrap --variant=minbase "$suite" "$root.tmp" "$mirror" >"$root.tmp.log" 2>&1 ||
        { tail -n 30 "$root.tmp.log" >&2; exit 1; }
    # sid's Release file can outlive its Valid-Until on a slow mirror;
    # recommends would only add weight.
    cat >"$root.tmp/etc/apt/apt.conf.d/90wireshark-vsock" <<'APT'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT
    mv "$root.tmp" "$root"
    rm -f "$root.tmp.log"
fi

# 2. Fresh copy of the source tree: tracked and untracked files, minus what
#    .gitignore excludes and any local CMake build folder.
rm -rf "$root/work"
mkdir -p "$root/work/src"
builds=$(cd "$src" && find . -mindepth 2 -maxdepth 3 -name CMakeCache.txt -printf '%h/\n' | cut -c3-)
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
        [ -e "$f" ] || continue                          # deleted, not yet committed
        for b in $builds; do case $f in "$b"*) continue 2 ;; esac; done
        printf '%s\0' "$f"
    done | tar --null -T - -cf -) | tar -C "$root/work/src" -xf -

# 3. What the README's tools/setup.sh installs, plus the list above. The stamp
#    records both, so a warm run skips apt unless one of them changed.
stamp=$root/.wireshark-vsock-packages
setup=/work/src/tools/setup.sh
setup_sum=none
[ -f "$root$setup" ] && setup_sum=$(sha256sum "$root$setup" | cut -c1-16)
want="${packages[*]} setup.sh:$setup_sum"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== apt-get install in $suite"
    log=$root/var/log/wireshark-vsock-apt.log
    { in_chroot apt-get -q update &&
      in_chroot apt-get -q -y install "${packages[@]}" &&
      if [ -f "$root$setup" ]; then in_chroot bash "$setup"; fi &&
      in_chroot apt-get clean; } >"$log" 2>&1 ||
        { tail -n 30 "$log" >&2; exit 1; }
    echo "$want" >"$stamp"
fi

# 4. Build with warnings as errors, then run the suite the README documents.
#    The tests drop to uid 65534 to load the plugin, so keep the tree readable.
#    Nothing is mounted in the chroot: apt, gcc, cmake, pytest and tshark all
#    work without /proc (sid's cmake only warns that /proc/cpuinfo is missing).
chmod -R a+rX "$root/work"
# shellcheck disable=SC2016  # expanded inside the chroot
in_chroot bash -euc '
    cd /work
    echo "== $(tshark --version 2>/dev/null | head -n1), $(gcc --version | head -n1), $(cmake --version | head -n1)"
    cmake -S src -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror"
    cmake --build build -j"$(nproc)"
    chmod -R a+rX build
    ctest --test-dir build --output-on-failure -j"$(nproc)"
    python3 src/tools/gui-check.py --build build --out gui-check
'
echo "== $suite: GUI screenshots in $root/work/gui-check"

if [ $run_deb = 1 ]; then
    in_chroot /work/src/tools/test-deb.sh /work/build
fi
echo "== $suite: OK"
