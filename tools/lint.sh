#!/usr/bin/env bash
# Static checks of the plugin's C sources, both must report nothing:
#  - clang-tidy: clang-analyzer-* and bugprone-*, except the checks that only
#    restate Wireshark's API (int offsets and lengths: narrowing-conversions;
#    hf/ett macros: macro-parentheses, reserved-identifier; many same-typed
#    parameters: easily-swappable-parameters; snprintf: DeprecatedOrUnsafeBufferHandling);
#  - cppcheck --enable=warning,performance,portability.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-tidy >/dev/null || ! command -v cppcheck >/dev/null; then
    as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends clang-tidy cppcheck >/dev/null
fi

sources=(plugin.c packet-*.c)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cmake -S . -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null

checks='-*,clang-analyzer-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,'
checks+='-bugprone-macro-parentheses,-bugprone-narrowing-conversions,'
checks+='-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'
tidy=$(clang-tidy -p "$build" --quiet --checks="$checks" "${sources[@]}" 2>&1 | grep -E "^$PWD/.*(warning|error):" || true)

# Wireshark's headers need a configuration cppcheck has not: check our code alone.
cpp=$(cppcheck --quiet --enable=warning,performance,portability --std=c11 -I . \
      --suppress=missingIncludeSystem --suppress=missingInclude \
      -DVSOCK_PLUGIN_VERSION='"0"' -D_U_= "${sources[@]}" 2>&1 || true)

[ -z "$tidy" ] && [ -z "$cpp" ] && { echo "lint: clang-tidy and cppcheck clean"; exit 0; }
printf '%s\n%s\n' "$tidy" "$cpp"
exit 1
