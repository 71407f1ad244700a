#!/bin/bash
# Make real AF_VSOCK captures (pcap, LINKTYPE_VSOCK 271) plus ground-truth JSON inside a
# qemu VM booted from Debian's own kernel. See README.md beside this file.
#
#   tools/vm-capture/make-captures.sh [--workdir DIR] [--rebuild] [--only S1,S2] [--tcg] [--mirror URL] [--proxy URL] [OUTDIR]
#
# Packages come from the host's own apt mirror and proxy (override: --mirror / DEBIAN_MIRROR,
# --proxy / VMCAP_APT_PROXY; --proxy none = no proxy).
# All vsock activity happens inside the VM: this host never loads vsock modules or opens
# AF_VSOCK sockets. The outer VM has no vsock device towards this host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
workdir=/var/tmp/wireshark-vsock-vmcap
outdir=$repo/test-captures/real
rebuild=0
only=""
force_tcg=0
suite=bookworm
mirror=${DEBIAN_MIRROR:-}
proxy=${VMCAP_APT_PROXY:-}

usage() { sed -n '5p' "$0" | sed 's/^# *//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --workdir) workdir=$2; shift 2 ;;
        --rebuild) rebuild=1; shift ;;
        --only) only=$2; shift 2 ;;
        --tcg) force_tcg=1; shift ;;
        --mirror) mirror=$2; shift 2 ;;
        --proxy) proxy=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option $1" >&2; usage 2 ;;
        *) outdir=$1; shift ;;
    esac
done
mkdir -p "$workdir" "$outdir"
workdir=$(cd "$workdir" && pwd)
outdir=$(cd "$outdir" && pwd)

# The host's Debian mirror, from deb822 (*.sources) or one-line sources.list entries: the first
# non-security URI that carries $suite, else the first non-security one with "debian" in it
# (like tools/chroot-test.sh's host_mirror, which does not look at suites).
host_mirror() {
    local f
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            # deb822: paragraphs separated by blank lines; print "URI SUITES..." per deb paragraph.
            awk -v RS= '{
                uri = ""; suites = ""; deb = 0; enabled = 1
                n = split($0, line, "\n")
                for (i = 1; i <= n; i++) {
                    if (line[i] ~ /^[ \t]*#/) continue
                    if (line[i] ~ /^Types:/ && line[i] ~ /[ \t]deb([ \t]|$)/) deb = 1
                    if (line[i] ~ /^Enabled:[ \t]*no/) enabled = 0
                    if (line[i] ~ /^URIs:/) { split(line[i], w, /[ \t]+/); uri = w[2] }
                    if (line[i] ~ /^Suites:/) { suites = line[i]; sub(/^Suites:[ \t]*/, "", suites) }
                }
                if (deb && enabled && uri != "") print uri, suites
            }' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            # deb [options] URI SUITE COMPONENTS...
            awk '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                print $i, $(i + 1)
            }' "$f"
        done
    } | awk -v suite="$suite" '
        $1 ~ /security/ { next }
        { for (i = 2; i <= NF; i++) if ($i == suite) { print $1; found = 1; exit } }
        first == "" && $1 ~ /debian/ { first = $1 }
        END { if (!found && first != "") print first }'
}

# The proxy the host's apt uses (Acquire::http::Proxy), if any.
host_proxy() {
    local p=""
    eval "$(apt-config shell p Acquire::http::Proxy 2>/dev/null)" || true
    case $p in ""|DIRECT|false) ;; *) echo "$p" ;; esac
}

[ -n "$mirror" ] || mirror=$(host_mirror)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
# apt_opts: for apt-get on the host (which already reads the host's own proxy setting; this
# carries an override); http_proxy: for debootstrap and apt-get inside the guest root.
apt_opts=()
case $proxy in
    none) proxy=""; apt_opts=(-o "Acquire::http::Proxy="); unset http_proxy ;;
    "") proxy=$(host_proxy); [ -z "$proxy" ] || export http_proxy=$proxy ;;
    *) apt_opts=(-o "Acquire::http::Proxy=$proxy"); export http_proxy=$proxy ;;
esac
echo "mirror: $mirror${proxy:+, proxy: $proxy}"

t_all=$(date +%s)
declare -a timings=()
# step NAME CMD...: run one step and remember how long it took.
step() {
    local name=$1 t0 t1
    shift
    echo "=== $name"
    t0=$(date +%s)
    "$@"
    t1=$(date +%s)
    timings+=("$(printf '%-22s %5ds' "$name" $((t1 - t0)))")
    echo "=== $name done in $((t1 - t0))s"
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "needs root (debootstrap, chroot, cpio with owners)" >&2
        exit 1
    fi
}

host_tools() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v tshark >/dev/null || missing+=(tshark)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get "${apt_opts[@]}" update -q
        DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# The kernel comes from Debian's linux-image-amd64, unpacked (never installed on the host).
kernel() {
    local kdir=$workdir/kernel pkg
    if [ $rebuild = 0 ] && [ -e "$kdir/.done" ]; then echo "cached: $kdir"; return; fi
    rm -rf "$kdir" && mkdir -p "$kdir/debs"
    (cd "$kdir/debs" && apt-get "${apt_opts[@]}" download linux-image-amd64)
    pkg=$(dpkg-deb -f "$kdir"/debs/linux-image-amd64_*.deb Depends | sed 's/[ ,(].*//')
    (cd "$kdir/debs" && apt-get "${apt_opts[@]}" download "$pkg")
    dpkg-deb -x "$kdir"/debs/"$pkg"_*.deb "$kdir/x"
    touch "$kdir/.done"
}

# gvproxy (gvisor-tap-vsock) is only in Debian sid; its Go binary needs only libc and runs on
# bookworm. Fetched with a private apt state (lists, cache, sources under the work dir) from the
# same mirror, so the host's apt configuration and lists stay untouched.
gvproxy_suite=sid
gvproxy() {
    local gdir=$workdir/gvproxy a
    if [ $rebuild = 0 ] && [ -e "$gdir/.done" ]; then echo "cached: $(cat "$gdir/.done")"; return; fi
    rm -rf "$gdir" && mkdir -p "$gdir/apt/lists/partial" "$gdir/apt/cache/archives/partial" \
        "$gdir/apt/sources.list.d" "$gdir/debs"
    : >"$gdir/apt/status"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $gvproxy_suite main" \
        >"$gdir/apt/sources.list"
    a=(-o "Dir::State::Lists=$gdir/apt/lists" -o "Dir::State::status=$gdir/apt/status"
        -o "Dir::Cache=$gdir/apt/cache" -o "Dir::Etc::SourceList=$gdir/apt/sources.list"
        -o "Dir::Etc::SourceParts=$gdir/apt/sources.list.d" -o "APT::Sandbox::User=root"
        "${apt_opts[@]}")
    apt-get "${a[@]}" -q update
    (cd "$gdir/debs" && apt-get "${a[@]}" -q download gvproxy)
    dpkg-deb -x "$gdir"/debs/gvproxy_*.deb "$gdir/x"
    "$gdir/x/usr/bin/gvproxy" -version
    rm -rf "$gdir/apt"  # the sid package lists (tens of MB) are not needed any more
    basename "$gdir"/debs/gvproxy_*.deb >"$gdir/.done"
}

kver() { basename "$(ls -d "$workdir"/kernel/x/lib/modules/*)"; }

# Modules the guests need; their dependencies are added from modules.dep.
guest_modules="vsock vsock_loopback vsockmon vsock_diag vmw_vsock_virtio_transport
vhost_vsock 9p 9pnet_virtio virtio_pci kvm_intel kvm_amd tun"

# Root file system: debootstrap minbase + the tools; packed as initramfs cpio files.
rootfs() {
    local root=$workdir/root kv stamp
    kv=$(kver)
    # Rebuild when this function, the module list, /init, the kernel or gvproxy changes.
    stamp=$( (declare -f rootfs; echo "$guest_modules $kv"; cat "$here/guest/init" \
        "$here/nested-files.py" "$workdir/gvproxy/.done") |
        sha256sum | cut -c1-16)
    if [ $rebuild = 0 ] && [ "$(cat "$workdir/root.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "cached: $workdir/root.cpio"; return
    fi
    rm -rf "$root" "$workdir/root.stamp"
    debootstrap --variant=minbase \
        --include=tcpdump,socat,iproute2,kmod,python3,openssl,openssh-client,procps,cpio \
        "$suite" "$root" "$mirror"
    # Daemons must not start inside the build chroot (openssh-server's postinst would).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    # shellcheck disable=SC2064  # expand $root now: it is local
    trap "umount '$root/proc' 2>/dev/null || true" EXIT
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends openssh-server qemu-system-x86 qemu-guest-agent udhcpc
    chroot "$root" apt-get clean
    umount "$root/proc"
    trap - EXIT

    # Kernel modules: only what the guests use, then depmod inside the root.
    python3 - "$workdir/kernel/x/lib/modules/$kv" "$root/lib/modules/$kv" "$guest_modules" <<'EOF'
import os, shutil, sys
src, dst, wanted = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
# modules.dep is made by depmod at install time, so derive dependencies from .modinfo.
by_name, deps = {}, {}
for d, _, files in os.walk(os.path.join(src, "kernel")):
    for f in files:
        if f.endswith(".ko"):
            p = os.path.join(d, f)
            name = f[:-3].replace("-", "_")
            by_name[name] = p
            data = open(p, "rb").read()
            deps[name] = [x.split(b"=", 1)[1].decode() for x in data.split(b"\0") if x.startswith(b"depends=")]
todo, seen = list(wanted), set()
while todo:
    n = todo.pop().replace("-", "_")
    if n in seen or n not in by_name:
        continue
    seen.add(n)
    todo += [d for d in ",".join(deps[n]).split(",") if d]
for n in sorted(seen):
    rel = os.path.relpath(by_name[n], src)
    os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
    shutil.copy2(by_name[n], os.path.join(dst, rel))
for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
    if os.path.exists(os.path.join(src, f)):
        shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
print("modules:", " ".join(sorted(seen)))
EOF
    chroot "$root" depmod -a "$kv"

    # Keys made once per build: a self-signed TLS cert (fixed subject, RSA 2048, 10 years)
    # and an SSH client key authorised for root.
    mkdir -p "$root/etc/vmcap" "$root/root/.ssh"
    chroot "$root" openssl req -x509 -newkey rsa:2048 -sha256 -days 3650 -nodes \
        -subj /CN=vsock-tls-test -keyout /etc/vmcap/tls.key -out /etc/vmcap/tls.crt 2>/dev/null
    chroot "$root" ssh-keygen -q -t ed25519 -N '' -C vmcap -f /root/.ssh/id_ed25519
    cp "$root/root/.ssh/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
    chmod 700 "$root/root/.ssh"

    install -m 755 "$here/guest/init" "$root/init"
    install -m 755 "$workdir/gvproxy/x/usr/bin/gvproxy" "$root/usr/bin/gvproxy"
    echo vmcap >"$root/etc/hostname"
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/info/*
    # Outer root: everything. Nested root: a small subset (see nested-files.py).
    (cd "$root" && find . -xdev | LC_ALL=C sort | cpio -o -H newc --quiet >"$workdir/root.cpio")
    python3 "$here/nested-files.py" "$root" >"$workdir/nested.list"
    (cd "$root" && cpio -o -H newc --quiet <"$workdir/nested.list" >"$workdir/nested.cpio")
    ls -la "$workdir"/*.cpio
    echo "$stamp" >"$workdir/root.stamp"
}

# Shared folder (9p) for the run: guest scripts, kernel and nested initramfs in, captures out.
stage() {
    local share=$workdir/share kv
    kv=$(kver)
    rm -rf "$share" && mkdir -p "$share/out" "$share/boot"
    cp -r "$here/guest" "$share/guest"
    ln "$workdir/kernel/x/boot/vmlinuz-$kv" "$share/boot/vmlinuz" 2>/dev/null ||
        cp "$workdir/kernel/x/boot/vmlinuz-$kv" "$share/boot/vmlinuz"
    ln "$workdir/nested.cpio" "$share/boot/nested.cpio" 2>/dev/null ||
        cp "$workdir/nested.cpio" "$share/boot/nested.cpio"
    {
        echo "{"
        printf '  "qemu-system-x86_64": "%s",\n' "$(qemu-system-x86_64 --version | head -1)"
        printf '  "accel": "%s"\n' "$accel"
        echo "}"
    } >"$share/host-info.json"
}

accel=tcg
# KVM counts as usable when the guest kernel boots far enough to panic for lack of a root
# file system. (Under some nested hypervisors /dev/kvm opens but guests hang or qemu aborts.)
pick_accel() {
    local kv log
    kv=$(kver)
    log=$workdir/kvm-probe.log
    if [ $force_tcg = 0 ] && [ -w /dev/kvm ]; then
        (timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -nographic \
            -no-reboot -serial stdio -monitor none \
            -kernel "$workdir/kernel/x/boot/vmlinuz-$kv" -append "console=ttyS0 panic=-1" \
            </dev/null >"$log" 2>&1) 2>/dev/null || true
        if grep -aq 'Kernel panic' "$log"; then accel=kvm; fi
    fi
    echo "accelerator: $accel"
}

boot() {
    local kv cpu
    kv=$(kver)
    if [ $accel = kvm ]; then cpu=host; else cpu=max; fi
    # The outer VM: 9p share, serial console on stdout, no network, no vsock device.
    timeout 3600 qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m 3072 \
        -nodefaults -nographic -no-reboot -serial stdio -monitor none \
        -kernel "$workdir/kernel/x/boot/vmlinuz-$kv" -initrd "$workdir/root.cpio" \
        -append "console=ttyS0 loglevel=4 panic=-1 vmcap.role=outer vmcap.only=${only:-all}" \
        -virtfs "local,path=$workdir/share,mount_tag=vmcap,security_model=none" \
        </dev/null 2>&1 | tee "$workdir/console.log"
    grep -q '^VMCAP-DONE ok' "$workdir/console.log" || {
        echo "guest run failed; see $workdir/console.log" >&2
        return 1
    }
}

collect() {
    local n=0 f
    for f in "$workdir"/share/out/*.pcap "$workdir"/share/out/*.json; do
        [ -e "$f" ] || continue
        cp "$f" "$outdir/"
        n=$((n + 1))
    done
    echo "copied $n files to $outdir"
}

verify() { python3 "$here/verify.py" "$outdir"; }

need_root
step "host tools" host_tools
step "kernel" kernel
step "gvproxy (sid)" gvproxy
step "root + initramfs" rootfs
pick_accel
step "stage share" stage
step "boot + scenarios" boot
step "collect" collect
step "verify (tshark)" verify

echo "=== timings"
printf '  %s\n' "${timings[@]}"
echo "  total                  $(($(date +%s) - t_all))s"
