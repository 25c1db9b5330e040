"""``bench_fast --size small --smoke`` runs the deployment configuration (chunk 32, 4 steps, guidance 3,
15 fps) end to end on CPU: stock beside fast, the agreement line, both guidance evaluations, the summary row.
A smoke test of the script (CPU timings mean nothing); the benchmark itself runs on the GPU machine."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("diffusers", reason="diffusers is needed to build the small Cosmos 3 pipeline")


@pytest.mark.slow
def test_small_smoke_covers_the_deployment_configuration(tmp_path):
    import torch

    from cosmos_ros.tools import bench_fast

    torch.set_num_threads(2)
    out = tmp_path / "bench.txt"
    argv = [
        "--size",
        "small",
        "--tiers",
        "256",
        "--configs",
        "deploy",
        "--smoke",
        "--no-video",
        "--out",
        str(out),
    ]
    assert bench_fast.main(argv) == 0
    text = out.read_text()
    assert "== deploy: tier 256: 256x256 input, chunk 32, 4 steps, guidance 3, fps 15" in text
    # guidance 3: two evaluations per step, the unconditional one with its own (shorter) text
    m = re.search(
        r"evaluations per step: (\d+) generation \+ (\d+) text tokens, (\d+) generation \+ (\d+) text", text
    )
    assert m and m.group(1) == m.group(3) and int(m.group(4)) < int(m.group(2))
    agree = float(re.search(r"actions fast ([0-9.e+-]+)", text).group(1))
    assert agree < 1e-4  # float32 on CPU: fast and stock compute the same function
    assert "fast fp8: not run (device cpu has no FP8 tensor cores" in text
    assert re.search(r"^\| deploy tier 256 \| \d+ ms \| \d+ ms \|", text, re.M)


def test_configurations_and_floor_model():
    from cosmos_ros.tools import bench_fast

    deploy = bench_fast.CONFIGS["deploy"]
    assert (deploy.chunk, deploy.steps, deploy.guidance, deploy.fps) == (32, 4, 3.0, 15.0)
    with pytest.raises(ValueError):
        bench_fast.BenchConfig("bad", chunk=6, steps=4, guidance=3.0, fps=15.0)
    with pytest.raises(SystemExit):
        bench_fast.main(["--configs", "nope"])
