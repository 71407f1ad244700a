import os
import re
import subprocess

import pytest

from vsocktest import REPO, Tshark


def _abi():
    if os.environ.get("VSOCK_WIRESHARK_ABI"):
        return os.environ["VSOCK_WIRESHARK_ABI"]
    version = subprocess.run(["tshark", "--version"], stdout=subprocess.PIPE, check=True).stdout.decode()
    major, minor = re.search(r"TShark \(Wireshark\) (\d+)\.(\d+)", version).groups()
    return f"{major}.{minor}"


@pytest.fixture(scope="session")
def tshark():
    plugin = os.environ.get("VSOCK_PLUGIN", os.path.join(REPO, "build", "vsock.so"))
    if not os.path.exists(plugin):
        pytest.fail(f"plugin not built: {plugin} (build it first, or run the tests through ctest)")
    runner = Tshark(plugin, _abi())
    yield runner
    runner.cleanup()
