#!/bin/sh
# Builds the plugin with AddressSanitizer + UBSan (cmake -DVSOCK_SANITIZE=ON) in
# build-asan/ and runs the whole test suite and a fuzz run against it, with the
# sanitizer runtime preloaded into tshark (build-asan/sanitizer-bin/tshark, a
# wrapper that CMakeLists.txt writes; see tools/fuzz/README.md).
#
#   tools/sanitize-test.sh                 # ctest + 120 s fuzz with a random seed
#   FUZZ_SECONDS=0 tools/sanitize-test.sh  # ctest only
#   FUZZ_SEED=1 FUZZ_SECONDS=600 tools/sanitize-test.sh
#   BUILD_DIR=/tmp/b CC=clang tools/sanitize-test.sh
#
# ctest includes tests/test_fuzz.py (the fixed-seed short fuzz), so the fuzz run
# here is a second one with another seed. Exit status non-zero on any failure.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
FUZZ_SEED=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
KEEP_DIR=${KEEP_DIR:-${TMPDIR:-/tmp}/vsock-fuzz-failures-asan}

cmake -S . -B "$BUILD_DIR" -DVSOCK_SANITIZE=ON
cmake --build "$BUILD_DIR" -j"$(nproc)"

wrapper="$PWD/$BUILD_DIR/sanitizer-bin/tshark"
[ -x "$wrapper" ] || { echo "sanitize-test: $wrapper missing (VSOCK_SANITIZE not applied?)" >&2; exit 1; }
if [ "$(id -u)" = 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$wrapper"; then
    echo "sanitize-test: $wrapper is not executable by nobody (tshark runs as nobody): build somewhere world-readable" >&2
    exit 1
fi
readelf -d "$BUILD_DIR/vsock.so" | grep -q 'libasan' || { echo "sanitize-test: vsock.so is not instrumented" >&2; exit 1; }

status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure || status=$?

if [ "$FUZZ_SECONDS" != 0 ]; then
    PATH="$PWD/$BUILD_DIR/sanitizer-bin:$PATH" python3 tools/fuzz.py --plugin "$BUILD_DIR/vsock.so" \
        --seconds "$FUZZ_SECONDS" --seed "$FUZZ_SEED" --keep-dir "$KEEP_DIR" || status=$?
fi
[ "$status" = 0 ] && echo "sanitize-test: clean (ASan+UBSan)" || echo "sanitize-test: FAILED (status $status)"
exit "$status"
