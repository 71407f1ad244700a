#!/usr/bin/env bash
# Installs what building and testing the plugin needs on Debian (12 and later).
# Runs apt-get as root, or through sudo for a normal user.
set -euo pipefail

packages=(
    cmake gcc make pkg-config          # build
    wireshark-dev libwireshark-dev libglib2.0-dev
    tshark                             # dissect, and run the tests
    python3 python3-pytest util-linux  # tests (setpriv drops root for tshark)
    python3-matplotlib                 # tools/vsock-stream-graph
    wireshark xvfb xdotool imagemagick fonts-dejavu-core   # tools/gui-check.py (the Qt GUI)
    socat curl                         # host programs in the extcap's tests
)

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
