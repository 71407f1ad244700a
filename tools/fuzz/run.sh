#!/bin/sh
# Builds the libFuzzer harness if needed, makes the seed corpus, and fuzzes.
#
#   tools/fuzz/run.sh [single|multi] [SECONDS]      # default: single 300
#
# Work folder: build-libfuzzer/ (harness, corpus/{single,multi} grown by the run,
# crashes/ for crash-*, timeout-*, oom-* inputs). Reproduce one crash:
#   build-libfuzzer/fuzz_vsock build-libfuzzer/crashes/crash-...
#   VSOCK_FUZZ_MULTI=1 build-libfuzzer/fuzz_vsock build-libfuzzer/crashes/crash-...  (multi)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mode=${1:-single}
seconds=${2:-300}
out=${FUZZ_OUT:-$repo/build-libfuzzer}
if [ ! -x "$out/fuzz_vsock" ] ||
   [ -n "$(find "$repo" "$here" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) -newer "$out/fuzz_vsock")" ]; then
    "$here/build.sh" "$out"
fi
[ -d "$out/corpus/$mode" ] || python3 "$here/make_corpus.py" "$out/corpus"
mkdir -p "$out/crashes"
case $mode in
    multi) export VSOCK_FUZZ_MULTI=1; max_len=65536 ;;
    single) unset VSOCK_FUZZ_MULTI; max_len=65612 ;;
    *) echo "usage: $0 [single|multi] [SECONDS]" >&2; exit 2 ;;
esac
# detect_leaks=0: with every wmem allocation a malloc, per-input state kept in file
# scope looks like a leak to libFuzzer's check, which also makes it 100x slower.
# Leaks are checked by tools/valgrind-test.sh instead. ASan's own check at exit
# would report libgcrypt's 4.7 KB kept from initialisation as a "crash".
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
exec "$out/fuzz_vsock" -detect_leaks=0 -max_len=$max_len -timeout=30 -rss_limit_mb=4096 \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$out/crashes/" \
    "$out/corpus/$mode"
