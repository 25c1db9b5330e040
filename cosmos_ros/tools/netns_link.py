"""Two network namespaces joined by a veth pair: a real TCP link between two "hosts" on one machine.

Why: the policy server's cross-host latency must include a kernel network stack on each side and a link,
which loopback skips. Made and removed by :func:`namespaces` (needs root and netns support; when either is
missing it raises ``RuntimeError`` with the reason and leaves nothing behind, so a benchmark can report the
rows as not run instead of aborting). Used by ``cosmos_ros.tools.bench_policy_server``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

NS_SRV, NS_CLI, VETH = "crps_srv", "crps_cli", "crps_v"
NS_SRV_IP, NS_CLI_IP = "10.231.0.1", "10.231.0.2"


def _checked(*cmd: str) -> None:
    """Run a set-up command; any failure is a ``RuntimeError`` naming the command and its stderr."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{' '.join(cmd)}: {exc}") from exc
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")


def delete_namespaces() -> None:
    """Remove both namespaces (and so the veth pair) and a veth end a killed run left outside them."""
    for ns in (NS_SRV, NS_CLI):  # deleting a namespace deletes its end of the veth pair (and so both)
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30, capture_output=True)
    subprocess.run(["ip", "link", "del", f"{VETH}0"], check=False, timeout=30, capture_output=True)


@contextlib.contextmanager
def namespaces() -> Iterator[None]:
    """Two namespaces joined by a veth pair (addresses only inside them); removed on exit.

    Raises:
        RuntimeError: They cannot be made here (no root, no ``ip``, no netns support); nothing is left behind.
    """
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        delete_namespaces()  # left over by a killed run: "File exists" otherwise
    try:
        _checked("ip", "netns", "add", NS_SRV)
        _checked("ip", "netns", "add", NS_CLI)
        _checked("ip", "link", "add", f"{VETH}0", "type", "veth", "peer", "name", f"{VETH}1")
        _checked("ip", "link", "set", f"{VETH}0", "netns", NS_SRV)
        _checked("ip", "link", "set", f"{VETH}1", "netns", NS_CLI)
        for ns, dev, ip in ((NS_SRV, f"{VETH}0", NS_SRV_IP), (NS_CLI, f"{VETH}1", NS_CLI_IP)):
            _checked("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _checked("ip", "-n", ns, "link", "set", dev, "up")
            _checked("ip", "-n", ns, "link", "set", "lo", "up")
        yield
    finally:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            delete_namespaces()


def shape_link(rate: str) -> None:
    """Token bucket on each end's egress (netem is not in every kernel; tbf is): the link's rate."""
    for ns, dev in ((NS_SRV, f"{VETH}0"), (NS_CLI, f"{VETH}1")):
        _checked("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "256kb",
                 "latency", "200ms")  # fmt: skip
