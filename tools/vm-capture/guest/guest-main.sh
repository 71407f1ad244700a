#!/bin/sh
# Run by /init inside a capture guest. $1 = outer (the capture VM) or nested (vhost guest).
role=${1:-outer}
share=/mnt/vmcap
t0=$(date +%s)

modprobe vsockmon && modprobe vsock_diag || exit 1
if [ "$role" = outer ]; then
    modprobe vsock_loopback || exit 1
else
    modprobe vmw_vsock_virtio_transport || exit 1
fi
ip link add type vsockmon && ip link set vsockmon0 up || exit 1
echo "VMCAP-GUEST $role: $(uname -r), vsockmon0 up after $(cut -d' ' -f1 /proc/uptime)s uptime"

only=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^vmcap\.only=//p')
[ "$only" = all ] && only=
python3 -u "$share/guest/capture.py" --role "$role" --out "$share/out" --only "$only"
rc=$?
echo "VMCAP-GUEST $role: scenarios took $(($(date +%s) - t0))s, rc=$rc"
[ "$role" = outer ] && { [ $rc = 0 ] && echo "VMCAP-DONE ok" || echo "VMCAP-DONE failed"; }
exit $rc
