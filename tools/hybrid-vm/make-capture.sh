#!/bin/bash
# A capture through a real user-space VMM: qemu (TCG) with vhost-user-vsock-pci,
# Debian's vhost-device-vsock as the device, a Debian kernel in the guest running
# guest.c; vsockhybriddump in place on vhost-device-vsock's Unix socket, socat and
# python as the host programs. Writes OUTDIR/vhost_device_vsock.pcap and .json (what
# the host programs sent and received; the guest's own account is in "guest_console").
#
#   tools/hybrid-vm/make-capture.sh [OUTDIR]       (default: test-captures/extcap)
#
# Needs root on Debian sid (vhost-device-vsock is in sid only), or a sid chroot with
# /proc mounted; installs its packages with apt-get. Not part of CI: it needs sid and
# boots a VM (about 10 s under TCG once the packages are there). The host opens no
# AF_VSOCK socket: vhost-device-vsock's host side is Unix sockets.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$src/test-captures/extcap}")
[ "$(id -u)" = 0 ] || { echo "$0: needs root (apt-get)" >&2; exit 1; }
[ -r /proc/self/stat ] || { echo "$0: /proc is not mounted" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
packages=(vhost-device-vsock qemu-system-x86 busybox-static gcc libc6-dev xz-utils cpio socat python3)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q " installed$" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get -q update >/dev/null
    apt-get -q -y install --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/hybrid-vm.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# The guest kernel: linux-image-amd64's image, its modules for vsock. Debian 14
# splits the image package into linux-binary-* (vmlinuz) and linux-modules-*.
echo "== kernel"
chown _apt "$work" 2>/dev/null || true     # apt downloads as _apt where it can
apt-get -q download linux-image-amd64 >/dev/null
image=$(dpkg-deb -f linux-image-amd64_*.deb Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -n1)
apt-get -q download "$image" >/dev/null
for dep in $(dpkg-deb -f "$image"_*.deb Depends | tr ',' '\n' | grep -o 'linux-\(binary\|modules\)-[0-9][^ ]*'); do
    apt-get -q download "$dep" >/dev/null
done
mkdir k
for deb in linux-*.deb; do dpkg-deb -x "$deb" k; done
vmlinuz=$(find k -name 'vmlinuz*' -type f | head -n1)
vsockdir=$(find k -type d -path '*/kernel/net/vmw_vsock' | head -n1)
if [ -z "$vmlinuz" ] || [ -z "$vsockdir" ]; then echo "$0: no kernel or vsock modules in $image" >&2; exit 1; fi

echo "== initramfs"
mkdir -p rd/bin rd/lib rd/proc rd/sys rd/dev
gcc -O2 -static -o rd/guest "$src/tools/hybrid-vm/guest.c"
cp /bin/busybox rd/bin/busybox
for m in vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
    f=$(find "$vsockdir" -name "$m.ko*" | head -n1)
    case $f in *.xz) xz -dc "$f" ;; *.zst) zstd -dc "$f" ;; *) cat "$f" ;; esac >"rd/lib/$m.ko"
done
install -m 755 "$src/tools/hybrid-vm/init" rd/init
(cd rd && find . | cpio -o -H newc 2>/dev/null | gzip -1) >initrd.gz

echo "== vhost-device-vsock and qemu"
mkdir run
uds=$work/run/vm.vsock
vhost-device-vsock --vm "guest-cid=3,uds-path=$uds,socket=$work/run/vhost.socket" >vdv.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S run/vhost.socket ] && break; sleep 0.1; done

# The host program guest-initiated connections reach: reads to "end", answers.
python3 - "$uds" >host53.json <<'PY' &
import json, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1] + "_53")
listener.listen()
conn, _ = listener.accept()
received = b""
while not received.endswith(b"end\n"):
    chunk = conn.recv(65536)
    if not chunk:
        break
    received += chunk
sent = b"host counted %d bytes\n" % len(received)
conn.sendall(sent)
conn.close()
json.dump({"received": received.hex(), "sent": sent.hex()}, sys.stdout)
PY
host53=$!
pids+=("$host53")
for _ in $(seq 100); do [ -S "${uds}_53" ] && break; sleep 0.1; done

qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd initrd.gz -append "console=ttyS0 quiet panic=-1" \
    -object memory-backend-memfd,id=mem0,size=512M,share=on -machine q35,memory-backend=mem0 \
    -chardev socket,id=char0,path="$work/run/vhost.socket" -device vhost-user-vsock-pci,chardev=char0 \
    >qemu.log 2>&1 &
qemu=$!
pids+=("$qemu")
for _ in $(seq 600); do grep -q "listening on vsock port 52" qemu.log && break; sleep 0.2; done
grep -q "listening on vsock port 52" qemu.log || { tail -n 20 qemu.log >&2; exit 1; }

echo "== capture"
"$src/extcap/vsockhybriddump" --uds "$uds" --guest-cid 3 --in-place -w capture.pcap 2>tool.log &
tool=$!
pids+=("$tool")
for _ in $(seq 100); do grep -q "capturing in place" tool.log && break; sleep 0.1; done
grep -q "(1 guest port listener(s) too)" tool.log || { cat tool.log >&2; exit 1; }

# socat sends its line after the OK: vhost-device-vsock 0.3.0 reads the CONNECT
# line through a buffer and loses what came in the same read (newer versions
# peek). The guest shuts nothing itself, so socat's end (2 s later) closes.
request="hello guest, from socat"
{ printf 'CONNECT 52\n'; sleep 1; printf '%s\n' "$request"; sleep 2; } |
    timeout 60 socat - "UNIX-CONNECT:$uds" >socat.out
timeout 120 tail --pid="$qemu" -f /dev/null
timeout 30 tail --pid="$host53" -f /dev/null
kill -TERM "$tool" 2>/dev/null || true     # it may have stopped: the VMM's socket went with its VM
wait "$tool" || { cat tool.log >&2; exit 1; }
cat tool.log
if [ ! -S "$uds" ] || [ ! -S "${uds}_53" ] || [ -n "$(find run -name '*vsockhybriddump*')" ]; then
    echo "$0: paths not restored" >&2; ls -la run >&2; exit 1
fi

mkdir -p "$out"
cp capture.pcap "$out/vhost_device_vsock.pcap"
python3 - "$out" "$request" "$(vhost-device-vsock --version)" "$(qemu-system-x86_64 --version | head -n1)" \
    "$image" <<'PY'
import hashlib, json, re, sys
out, request, vdv, qemu, image = sys.argv[1:]

def summary(data):
    entry = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if len(data) <= 2048:
        entry["hex"] = data.hex()
    return entry

socat = open("socat.out", "rb").read()
ok, _, reply = socat.partition(b"\n")
host53 = json.load(open("host53.json"))
console = []
for line in open("qemu.log", errors="replace"):
    match = re.search(r"(guest|init): .*", re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|.)", "", line))
    if match:
        console.append(match.group(0).strip())
truth = {
    "scenario": "vhost_device_vsock",
    "description": "A real user-space VMM: qemu (TCG) with vhost-user-vsock-pci and Debian's "
                   "vhost-device-vsock; vsockhybriddump in place on its Unix socket. socat "
                   "connects to the guest's port 52 (vhost-device-vsock answers OK with the "
                   "guest's port, so the host port is made up); the guest connects to the "
                   "host's port 53, where a python program listens.",
    "pcap": "vhost_device_vsock.pcap", "pcap_linktype": 271, "tool": "extcap/vsockhybriddump",
    "vmm": f"{vdv}; {qemu}; guest kernel {image}",
    "address_convention": "host CID 2, guest CID 3 (--guest-cid); made-up ports are "
                          "2147483648 + n, n from 0 in each run",
    "guest_console": console,
    "connections": [
        {"name": "socat to the guest's port 52", "initiator": "host", "result": "established",
         "host": {"cid": 2, "port": 1 << 31}, "guest": {"cid": 3, "port": 52},
         "follow_node0": "host", "ok_line": (ok + b"\n").decode(),
         "host_to_guest": summary(request.encode() + b"\n"), "guest_to_host": summary(reply)},
        {"name": "the guest to the host's port 53 (guest port made up)", "initiator": "guest",
         "result": "established", "host": {"cid": 2, "port": 53},
         "guest": {"cid": 3, "port": (1 << 31) + 1}, "follow_node0": "guest",
         "host_to_guest": summary(bytes.fromhex(host53["sent"])),
         "guest_to_host": summary(bytes.fromhex(host53["received"]))},
    ],
}
with open(f"{out}/vhost_device_vsock.json", "w", encoding="utf-8") as f:
    json.dump(truth, f, indent=1)
    f.write("\n")
print("\n".join(console))
PY
echo "== wrote $out/vhost_device_vsock.pcap and .json"
