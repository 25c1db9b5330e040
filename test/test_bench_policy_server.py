"""``bench_policy_server``: its argument checks, the GPU kind refused without a GPU, and a stand-in run whose
network-namespace rows fail soft (the rows say why, the other paths still run). CPU only, no ROS; the
timings of these runs mean nothing (2 plans of a 5-ms stand-in), only the report's shape is checked."""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("grpc", reason="the policy server's transport is gRPC (requirements-server.txt)")

from cosmos_ros.tools import bench_policy_server as bench
from cosmos_ros.tools import netns_link


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kinds", "standin,huge"], "unknown model kind 'huge'; valid: standin, tiny, small, nano"),
        (["--kinds", "nano"], "--kinds nano needs --device cuda"),
        (["--netns-rate", "1gbit"], "--netns-rate shapes the veth link of --netns"),
        (["--chunk-size", "6"], "chunk_size must be a positive multiple of 4"),
        (["--guidance", "0.5"], "guidance_scale must be a finite number >= 1.0"),
        (["--plans", "0"], "--plans must be >= 1, got 0"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_deployment_setting_is_accepted():
    args = bench.parse_args(["--kinds", "standin,tiny,nano", "--device", "cuda", "--chunk-size", "32",
                             "--steps", "4", "--guidance", "3"])  # fmt: skip
    opts = bench.options(args)
    assert (opts.chunk_size, opts.num_inference_steps, opts.guidance_scale) == (32, 4, 3.0)


def test_nano_without_a_gpu_stops_before_building(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal under test cannot happen here")
    assert bench.main(["--kinds", "nano", "--device", "cuda"]) == 2
    assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_namespaces_without_ip_raise_and_leave_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `ip` on PATH: as on a machine without iproute2
    with pytest.raises(RuntimeError, match="ip netns add crps_srv"), netns_link.namespaces():
        pytest.fail("the body must not run when the namespaces could not be made")


def _rows(text: str) -> dict[str, str]:
    """Path name (the first 36 columns) -> the rest of its row."""
    return {line[:36].strip(): line[36:] for line in text.splitlines() if line.startswith(("in-", "server,"))}


def test_standin_run_reports_every_path_and_the_netns_reason(monkeypatch, tmp_path):
    # `ip` missing makes the netns part fail the way no root does; the servers use sys.executable, not PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "report.txt"
    argv = ["--kinds", "standin", "--plans", "2", "--standin-ms", "5", "--netns", "--netns-rate", "1gbit",
            "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    text = out.read_text()
    assert re.search(r"^# machine: \d+ CPUs, load average [0-9.]+ at start, Python 3\.\d+", text, re.M)
    assert "no GPU used (--device cpu)" in text
    assert "chunk 16, 2 steps, guidance 1, resolution tier 256" in text
    rows = _rows(text)
    for path in ("in-process", "server, unix socket + shared memory", "server, unix socket, frame inline",
                 "server, TCP loopback"):  # fmt: skip
        n, wall, model, over_p50, over_p90, *added = rows[path].split()
        assert n == "2"
        assert all(math.isfinite(float(v)) for v in (wall, model, over_p50, over_p90, *added))
        assert float(model) >= 5.0  # the stand-in's sleep is inside the model time, on both sides of the wire
    for path in ("server, TCP veth between 2 netns", "server, TCP veth at 1gbit"):
        assert rows[path].lstrip().startswith("not run: no network namespaces here (ip netns add crps_srv:")
    shared = re.findall(r"^\s+(\d) +(\d+) +[0-9.]+ +[0-9.]+ +[0-9.]+$", text, re.M)
    assert shared == [("1", "2"), ("2", "4")]
