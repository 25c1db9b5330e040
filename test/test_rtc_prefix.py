"""Prefix conditioning (real-time chunking without gradients): the weights, the targets, and the fast sampler.

The closed-loop check runs the tiny random-weight model on CPU with an injected constant latency: each chunk
is started when the previous one was delivered (back to back), on a new image and a new seed, and the steps
of the new chunk that are due before it can arrive are compared with the chunk that executes meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosmos_ros.rtc import ExecutingChunk, PrefixConfig, build_prefix, frozen_steps, prefix_weights
from cosmos_ros.runtime.backend import ActionPrefix, PolicyRequest

PERIOD = 1.0 / 15.0
CHUNK = 16
# Normalised action units. With weight 1 the sampler keeps a row on the straight flow path to its target, so
# only float32 rounding remains (measured ~1e-6 on values of magnitude ~10); unconditioned chunks of this
# random model differ by O(1)-O(10) there.
AGREE_TOL = 1e-3
DISAGREE_MIN = 0.5


# ---- weights and targets (pure) ----------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["hard", "linear", "exp"])
def test_weights_are_one_on_the_frozen_steps_and_zero_from_the_horizon(schedule: str) -> None:
    w = prefix_weights(d=3, end=10, total=CHUNK, schedule=schedule)
    assert w.shape == (CHUNK,)
    assert np.all(w[:3] == 1.0)
    assert np.all(w[10:] == 0.0)
    assert np.all(np.diff(w) <= 0)  # never increases
    if schedule == "hard":
        assert np.all(w[3:] == 0.0)
    else:
        assert np.all((w[3:10] > 0) & (w[3:10] < 1))


def test_exp_schedule_decays_faster_than_linear() -> None:
    lin = prefix_weights(2, 12, CHUNK, "linear")
    exp = prefix_weights(2, 12, CHUNK, "exp")
    assert np.all(exp[2:12] < lin[2:12])


def test_weights_reject_inconsistent_spans() -> None:
    with pytest.raises(ValueError, match="d <= end"):
        prefix_weights(5, 3, CHUNK, "exp")
    with pytest.raises(ValueError, match="schedule"):
        prefix_weights(1, 3, CHUNK, "cosine")


def test_frozen_steps_is_the_ceiling_of_the_delay_in_steps() -> None:
    assert frozen_steps(arrival_s=0.0, t0_s=0.0, step_period_s=0.1, total=16) == 0
    assert frozen_steps(arrival_s=0.31, t0_s=0.0, step_period_s=0.1, total=16) == 4
    assert frozen_steps(arrival_s=0.3, t0_s=0.0, step_period_s=0.1, total=16) == 3
    assert frozen_steps(arrival_s=9.0, t0_s=0.0, step_period_s=0.1, total=16) == 16


def test_build_prefix_interpolates_the_executing_chunk_on_the_new_grid() -> None:
    raw = np.arange(8, dtype=np.float32).reshape(8, 1) * np.ones((1, 3), dtype=np.float32)  # row k = k
    current = ExecutingChunk(t0_s=1.0, step_period_s=0.1, raw_actions=raw)
    pre = build_prefix(
        current,
        t0_s=1.25,
        step_period_s=0.1,
        total=8,
        arrival_s=1.5,
        config=PrefixConfig(execution_horizon=6, prefix_attention_schedule="linear"),
    )
    assert pre is not None
    assert pre.frozen_steps == 3
    np.testing.assert_allclose(pre.actions[:5, 0], [2.5, 3.5, 4.5, 5.5, 6.5], atol=1e-6)
    # Rows past the executing chunk's last step (t = 1.7) have no target: weight 0 whatever the schedule.
    assert np.all(pre.weights[5:] == 0.0)
    assert np.all(pre.weights[:3] == 1.0)


def test_no_prefix_when_nothing_overlaps() -> None:
    current = ExecutingChunk(t0_s=0.0, step_period_s=0.1, raw_actions=np.zeros((4, 2), np.float32))
    assert build_prefix(current, 5.0, 0.1, 4, 5.2, PrefixConfig()) is None


def test_prefix_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="execution_horizon"):
        PrefixConfig(execution_horizon=0)
    with pytest.raises(ValueError, match="prefix_attention_schedule"):
        PrefixConfig(prefix_attention_schedule="zeros")
    with pytest.raises(ValueError, match="prefix_strength"):
        PrefixConfig(prefix_strength=1.5)


def test_action_prefix_validates_itself() -> None:
    with pytest.raises(ValueError, match="weights"):
        ActionPrefix(np.zeros((4, 2), np.float32), np.full(4, 2.0, np.float32))
    with pytest.raises(ValueError, match="finite"):
        ActionPrefix(np.full((4, 2), np.nan, np.float32), np.ones(4, np.float32))
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="prefix has 4 rows"):
        PolicyRequest(
            image=img,
            prompt="p",
            domain_name="d",
            chunk_size=8,
            prefix=ActionPrefix(np.zeros((4, 2), np.float32), np.ones(4, np.float32)),
        )


# ---- the fast sampler, closed loop with an injected latency ----------------------------------------
@pytest.fixture(scope="module")
def fast_backend(tiny_model_dir: Path):
    pytest.importorskip("diffusers", reason="the fast backend runs on a loaded Cosmos 3 pipeline")
    import torch

    from cosmos_ros.runtime.fast import FastPolicyBackend
    from cosmos_ros.runtime.loader import load_pipeline

    torch.manual_seed(0)
    pipe = load_pipeline(tiny_model_dir, device="cpu", dtype="float32", required_width=10)
    return FastPolicyBackend(pipe)


def _run_loop(backend, latency_fraction: float, conditioned: bool, schedule: str = "exp") -> list[float]:
    """Three back-to-back chunks; returns, per switch, the largest prefix disagreement (normalised units)."""
    rng = np.random.default_rng(1)
    latency = latency_fraction * CHUNK * PERIOD
    cfg = PrefixConfig(execution_horizon=12, prefix_attention_schedule=schedule)
    start, current, errors = 0.0, None, []
    for k in range(3):
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        t0 = start  # the frame is captured when inference starts; the profile's action delay is 0
        prefix = None
        if current is not None:
            prefix = build_prefix(current, t0, PERIOD, CHUNK, start + latency, cfg)
            assert prefix is not None and prefix.frozen_steps >= 1
        req = PolicyRequest(
            image=image,
            prompt="pick up the block",
            domain_name="robomind-franka",
            chunk_size=CHUNK,
            num_inference_steps=6,
            seed=k,
            prefix=prefix if conditioned else None,
        )
        actions = backend.run(req).actions
        if current is not None:
            d = frozen_steps(start + latency, t0, PERIOD, CHUNK)
            executed, _ = current.at(t0 + PERIOD * np.arange(d))
            errors.append(float(np.abs(actions[:d] - executed).max()))
        current = ExecutingChunk(t0, PERIOD, actions)
        start += latency  # back to back: the next inference starts when this plan arrives
    return errors


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_consecutive_chunks_agree_on_the_executed_prefix_only_when_conditioned(
    fast_backend, fraction
) -> None:
    on = _run_loop(fast_backend, fraction, conditioned=True)
    off = _run_loop(fast_backend, fraction, conditioned=False)
    assert max(on) < AGREE_TOL, on
    assert min(off) > DISAGREE_MIN, off


@pytest.mark.parametrize("schedule", ["hard"])
def test_every_schedule_pins_the_frozen_steps(fast_backend, schedule: str) -> None:
    assert max(_run_loop(fast_backend, 0.3, conditioned=True, schedule=schedule)) < AGREE_TOL


def test_soft_steps_move_toward_the_previous_chunk(fast_backend) -> None:
    """Past the frozen steps the soft mask pulls the new chunk part way: closer than unconditioned."""
    rng = np.random.default_rng(3)
    img1, img2 = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    kw = dict(prompt="p", domain_name="robomind-franka", chunk_size=CHUNK, num_inference_steps=6)
    first = fast_backend.run(PolicyRequest(image=img1, seed=0, **kw)).actions
    current = ExecutingChunk(0.0, PERIOD, first)
    pre = build_prefix(
        current,
        0.2,
        PERIOD,
        CHUNK,
        0.4,
        PrefixConfig(execution_horizon=12, prefix_attention_schedule="linear"),
    )
    assert pre is not None
    soft = slice(pre.frozen_steps, 10)
    on = fast_backend.run(PolicyRequest(image=img2, seed=1, prefix=pre, **kw)).actions
    off = fast_backend.run(PolicyRequest(image=img2, seed=1, **kw)).actions
    assert np.abs(on[soft] - pre.actions[soft]).mean() < np.abs(off[soft] - pre.actions[soft]).mean()
    # Beyond the horizon nothing is pinned; the chunk may still change a little through attention.
    assert np.all(pre.weights[12:] == 0)


def test_prefix_with_the_wrong_width_is_rejected(fast_backend) -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    pre = ActionPrefix(np.zeros((CHUNK, 3), np.float32), np.ones(CHUNK, np.float32))
    with pytest.raises(ValueError, match="action columns"):
        fast_backend.run(
            PolicyRequest(
                image=img,
                prompt="p",
                domain_name="robomind-franka",
                chunk_size=CHUNK,
                num_inference_steps=2,
                prefix=pre,
            )
        )


def test_the_reference_backend_refuses_a_prefix_it_cannot_apply(tiny_model_dir: Path) -> None:
    pytest.importorskip("diffusers", reason="the reference backend needs diffusers")
    from cosmos_ros.runtime.diffusers_backend import DiffusersPolicyBackend
    from cosmos_ros.runtime.loader import load_pipeline

    backend = DiffusersPolicyBackend(
        load_pipeline(tiny_model_dir, device="cpu", dtype="float32", required_width=10)
    )
    pre = ActionPrefix(np.zeros((4, 10), np.float32), np.ones(4, np.float32))
    req = PolicyRequest(
        image=np.zeros((48, 64, 3), np.uint8),
        prompt="p",
        domain_name="robomind-franka",
        chunk_size=4,
        num_inference_steps=1,
        prefix=pre,
    )
    with pytest.raises(ValueError, match="fast"):
        backend.run(req)
