#!/bin/sh
# Builds the libFuzzer harness tools/fuzz/fuzz_vsock.c with clang against the
# system's libwireshark (Debian: apt-get install clang libclang-rt-14-dev
# libwireshark-dev). The plugin's sources are compiled in, instrumented for
# coverage, ASan and UBSan; libwireshark itself is not instrumented.
#
#   tools/fuzz/build.sh [OUT_DIR]        # default build-libfuzzer/
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build-libfuzzer}
CC=${CC:-clang}
mkdir -p "$out"

# The plugin's C sources, as CMakeLists.txt lists them.
sources=$(sed -n '/^add_library(vsock MODULE/,/^)/p' "$repo/CMakeLists.txt" | grep -o '[A-Za-z0-9_-]*\.c' | sed "s|^|$repo/|")
version=$(sed -n 's/^project([^ ]* VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")

flags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# shellcheck disable=SC2046,SC2086
$CC $flags -std=gnu11 -Wall -Wno-unused-parameter \
    -DVSOCK_PLUGIN_VERSION="\"$version\"" -I"$repo" $(pkg-config --cflags wireshark) \
    -o "$out/fuzz_vsock" "$here/fuzz_vsock.c" $sources \
    $(pkg-config --libs wireshark) -lwiretap -lwsutil -lglib-2.0
echo "built $out/fuzz_vsock"
