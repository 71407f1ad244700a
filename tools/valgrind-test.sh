#!/bin/sh
# Runs tshark with the vsock plugin under valgrind memcheck over every capture in
# test-captures/ (concatenated into one file with mergecap -a, so one tshark
# start-up under valgrind is enough), once in one pass with -V -x and once in two
# passes (-2 -V) with the statistics taps, as nobody (tshark ignores
# WIRESHARK_PLUGIN_DIR for root).
#
#   tools/valgrind-test.sh [PLUGIN]      # default build/vsock.so
#
# Memory errors (invalid reads/writes, uses of uninitialised values, bad frees)
# anywhere fail the run (exit 1). Leaks are counted, not failed: libwireshark
# keeps memory until exit; "definitely lost" blocks whose stack goes through
# vsock.so are listed and do fail the run. G_SLICE=always-malloc and
# WIRESHARK_DEBUG_WMEM_OVERRIDE=simple give valgrind every allocation.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
plugin=${1:-$repo/build/vsock.so}
[ -f "$plugin" ] || { echo "valgrind-test: no plugin at $plugin (build first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind-test: apt-get install valgrind" >&2; exit 2; }
abi=$(tshark --version 2>/dev/null | sed -n 's/^TShark (Wireshark) \([0-9]*\.[0-9]*\).*/\1/p')

work=$(mktemp -d /tmp/vsock-valgrind-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins/$abi/epan" "$work/home" "$work/empty" "$work/logs"
cp "$plugin" "$work/plugins/$abi/epan/vsock.so"
# vsock captures only (mergecap needs one link type; a few are Ethernet, for comparison)
for f in $(find "$repo/test-captures" -name '*.pcap' | sort); do
    capinfos -E "$f" 2>/dev/null | grep -q 'encapsulation: *Linux vsock' && echo "$f"
done > "$work/list"
# shellcheck disable=SC2046
mergecap -a -F pcap -w "$work/all.pcap" $(cat "$work/list")
chmod -R a+rX "$work"; chmod 777 "$work/home" "$work/logs"
packets=$(capinfos -c -M "$work/all.pcap" | sed -n 's/^Number of packets: *//p')
echo "valgrind-test: $(wc -l < "$work/list") captures, $packets packets, plugin $plugin"

run() {
    name=$1; shift
    log="$work/logs/$name.log"
    as_nobody=""
    [ "$(id -u)" = 0 ] && as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups --"
    # shellcheck disable=SC2086
    $as_nobody env -i PATH="$PATH" HOME="$work/home" LC_ALL=C.UTF-8 TZ=UTC \
        WIRESHARK_PLUGIN_DIR="$work/plugins" WIRESHARK_EXTCAP_DIR="$work/empty" \
        G_SLICE=always-malloc WIRESHARK_DEBUG_WMEM_OVERRIDE=simple \
        valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=none --num-callers=40 --log-file="$log" \
        tshark -n "$@" -r "$work/all.pcap" > /dev/null 2> "$work/$name.stderr" || true
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
    definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
    ours=$(grep -c 'vsock\.so' "$log" || true)
    echo "valgrind-test: tshark $*: ${errors:-?} errors, definitely lost ${definite:-0} bytes, $ours stack frames in vsock.so"
    cp "$log" "${VALGRIND_LOG_DIR:-/tmp}/vsock-valgrind-$name.log" 2>/dev/null || true
    if [ "${errors:-1}" != 0 ] || [ "$ours" != 0 ]; then
        echo "valgrind-test: see ${VALGRIND_LOG_DIR:-/tmp}/vsock-valgrind-$name.log"
        status=1
    fi
}
as_nobody=""
[ "$(id -u)" = 0 ] && as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups --"
# shellcheck disable=SC2086
$as_nobody env -i PATH="$PATH" HOME="$work/home" WIRESHARK_PLUGIN_DIR="$work/plugins" \
    WIRESHARK_EXTCAP_DIR="$work/empty" tshark -G plugins 2>/dev/null | grep -q 'vsock\.so' ||
    { echo "valgrind-test: tshark does not load $plugin" >&2; exit 2; }
status=0
run one-pass -V -x
run two-pass -2 -V -z expert -z io,phs
[ "$status" = 0 ] && echo "valgrind-test: clean" || echo "valgrind-test: FAILED"
exit "$status"
