"""The tiny model's fast backend behind the policy server gives exactly what it gives in-process.

Same backend object, same requests, one through the server (frame in shared memory or inline, prefix
included) and one called directly: any field lost or altered on the wire (pixels, seed, steps, the prefix's
targets and weights) would change the actions. No ROS here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosmos_ros.runtime.backend import ActionPrefix, PolicyRequest

pytestmark = pytest.mark.slow
CHUNK, DOMAIN, WIDTH = 16, "robomind-franka", 10


@pytest.fixture(scope="module")
def fast_backend(tiny_model_dir: Path) -> Any:
    pytest.importorskip("diffusers", reason="the fast backend runs on a loaded Cosmos 3 pipeline")
    import torch

    from cosmos_ros.runtime.fast import FastPolicyBackend
    from cosmos_ros.runtime.loader import load_pipeline

    torch.manual_seed(0)
    pipe = load_pipeline(tiny_model_dir, device="cpu", dtype="float32", required_width=WIDTH)
    return FastPolicyBackend(pipe)


@pytest.fixture(scope="module")
def address(fast_backend: Any) -> Iterator[str]:
    from cosmos_ros.policy_server.server import PolicyService, start_server
    from cosmos_ros.policy_server.wire import ServedModel

    served = ServedModel("tiny_cosmos3", "franka_test", DOMAIN, WIDTH, CHUNK)
    service = PolicyService(fast_backend, served, "fast", "cpu", "float32", shared_memory=True)
    with tempfile.TemporaryDirectory(prefix="cr_psm_") as d:
        server, _ = start_server(service, [f"unix://{d}/policy.sock"])
        yield f"unix://{d}/policy.sock"
        server.stop(grace=None).wait(timeout=5)
        service.close()


def _requests() -> list[PolicyRequest]:
    rng = np.random.default_rng(7)
    kw: dict[str, Any] = dict(
        prompt="pick up the block", domain_name=DOMAIN, chunk_size=CHUNK, num_inference_steps=3
    )
    img = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    prefix = ActionPrefix(
        actions=rng.uniform(-0.5, 0.5, (CHUNK, WIDTH)).astype(np.float32),
        weights=np.concatenate([np.ones(4), np.linspace(1, 0, 8), np.zeros(4)]).astype(np.float32),
        frozen_steps=4,
    )
    return [
        PolicyRequest(image=img[0], seed=1, **kw),
        PolicyRequest(image=img[1], seed=2, guidance_scale=2.0, **kw),
        PolicyRequest(image=img[1], seed=3, prefix=prefix, **kw),
    ]


@pytest.mark.parametrize("shared_memory", [True, False])
def test_server_path_equals_in_process(fast_backend: Any, address: str, shared_memory: bool) -> None:
    from cosmos_ros.policy_server.client import ClientConfig, RemotePolicyBackend
    from cosmos_ros.policy_server.wire import ServedModel

    client = RemotePolicyBackend(
        ClientConfig(address, connect_timeout_s=10.0, call_timeout_s=120.0, shared_memory=shared_memory),
        ServedModel("tiny_cosmos3", "franka_test", DOMAIN, WIDTH, CHUNK),
    )
    client.connect()
    try:
        for req in _requests():
            remote = client.run(req).actions
            local = fast_backend.run(req).actions
            assert remote.shape == (CHUNK, WIDTH)
            np.testing.assert_allclose(remote, local, rtol=0, atol=1e-6)
        # And the prefix mattered: without it the third request gives other actions.
        req = _requests()[2]
        free = fast_backend.run(PolicyRequest(**{**req.__dict__, "prefix": None})).actions
        assert np.abs(client.run(req).actions - free).max() > 1e-3
    finally:
        client.close()
