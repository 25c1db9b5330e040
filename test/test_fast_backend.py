"""Fast backend vs the stock diffusers pipeline on the tiny random-weight model (CPU, float32).

The metric is the relative L2 error ``||fast - stock|| / ||stock||`` of the action tensor (and of the first
decoded frame when video is decoded). In float32 on CPU the two paths differ only by summation order, so the
bound is 1e-5; on the GPU in bf16 the benchmark (``cosmos_ros.tools.bench_fast``) reports the same metric.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

diffusers = pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")

from diffusers import DiffusionPipeline  # noqa: E402
from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import CosmosActionCondition  # noqa: E402

from cosmos_ros.runtime.backend import PolicyRequest  # noqa: E402
from cosmos_ros.runtime.fast import (  # noqa: E402
    FastPolicyBackend,
    linear_sampler_coefficients,
    relative_l2,
)
from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline  # noqa: E402

TOL = 1e-5


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = make_tiny_pipeline(tmp_path_factory.mktemp("tiny_cosmos3"), seed=0)
    p = DiffusionPipeline.from_pretrained(str(path))
    p.set_progress_bar_config(disable=True)
    return p


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _stock(pipe, req: PolicyRequest, output_type: str = "latent"):
    """The reference: the unmodified diffusers call with the generator convention the fast path uses."""
    cond = CosmosActionCondition(
        mode="policy",
        chunk_size=req.chunk_size,
        domain_name=req.domain_name,
        resolution_tier=req.resolution_tier,
        image=Image.fromarray(
            req.image
        ),  # a uint8 array would be mis-scaled by diffusers 0.42.1 (see fast.py)
        view_point=req.view_point,
    )
    out = pipe(
        req.prompt,
        action=cond,
        num_inference_steps=req.num_inference_steps,
        guidance_scale=req.guidance_scale,
        fps=req.fps,
        generator=torch.Generator("cpu").manual_seed(req.seed),
        output_type=output_type,
        enable_safety_check=False,
    )
    return out.action[0].float().numpy(), out.video


@pytest.mark.parametrize(
    ("hw", "guidance", "chunk"),
    [((256, 256), 1.0, 16), ((240, 320), 3.0, 8)],
    ids=["square-nocfg-chunk16", "4x3-cfg-chunk8"],
)
def test_actions_match_stock(pipe, hw, guidance, chunk):
    req = PolicyRequest(
        image=_image(*hw),
        prompt="pick up the red cube",
        domain_name="umi",
        chunk_size=chunk,
        num_inference_steps=6,
        guidance_scale=guidance,
    )
    stock, _ = _stock(pipe, req)
    out = FastPolicyBackend(pipe).run(req)
    assert out.actions.shape == stock.shape == (chunk, 10)
    assert out.actions.dtype == np.float32
    err = relative_l2(out.actions, stock)
    assert err < TOL, f"fast vs stock actions: relative L2 {err:.3e}"
    # The metric can fail: another seed's actions are far from these.
    other, _ = _stock(pipe, PolicyRequest(**{**req.__dict__, "seed": 1}))
    assert relative_l2(other, stock) > 0.1


def test_first_decoded_frame_matches_stock(pipe):
    req = PolicyRequest(
        image=_image(256, 256, seed=3),
        prompt="open the drawer",
        domain_name="bridge_orig_lerobot",
        chunk_size=8,
        num_inference_steps=4,
        decode_video=True,
    )
    stock_actions, stock_video = _stock(pipe, req, output_type="np")
    out = FastPolicyBackend(pipe).run(req)
    stock_u8 = np.clip(np.round(np.asarray(stock_video) * 255.0), 0, 255).astype(np.uint8)
    assert out.video is not None and out.video.shape == stock_u8.shape == (9, 256, 256, 3)
    assert relative_l2(out.actions, stock_actions) < TOL
    frame_err = relative_l2(out.video[0].astype(np.float64), stock_u8[0].astype(np.float64))
    assert frame_err < 1e-3, f"first frame relative L2 {frame_err:.3e}"
    assert "decode_video" in out.timings


def test_causal_vae_first_frame_alone_gives_the_same_latent(pipe):
    """The claim behind encoding one frame: latent 0 of the repeat-padded clip equals the 1-frame latent."""
    img = _image(240, 320, seed=5)
    clip, size, _, _ = pipe._prepare_action_video_conditioning(
        [img], 256, 17, device="cpu", dtype=torch.float32
    )
    one, size1, _, _ = pipe._prepare_action_video_conditioning(
        [img], 256, 1, device="cpu", dtype=torch.float32
    )
    assert torch.equal(size, size1)
    full = pipe._encode_video(clip)
    single = pipe._encode_video(one)
    assert full.shape[2] == 5 and single.shape[2] == 1
    assert torch.allclose(full[:, :, :1], single, rtol=0, atol=1e-6)
    # ...and the test can fail: a different first frame changes the latent.
    other = pipe._encode_video(torch.flip(one, dims=[-1]))
    assert not torch.allclose(other, single, atol=1e-3)


def test_text_keys_values_do_not_depend_on_generation_tokens(pipe):
    """Verify the premise of the text K/V cache on the stock module: text outputs ignore generation tokens."""
    tr = pipe.transformer
    layer = tr.layers[0]
    torch.manual_seed(0)
    und = torch.randn(7, tr.config.hidden_size)
    gen_a = torch.randn(5, tr.config.hidden_size)
    gen_b = torch.randn(5, tr.config.hidden_size)
    d = tr.config.head_dim
    rope = (torch.ones(7, d), torch.zeros(7, d), torch.ones(5, d), torch.zeros(5, d))
    und_a, out_a = layer(und, gen_a, rope)
    und_b, out_b = layer(und, gen_b, rope)
    assert torch.equal(und_a, und_b)
    assert not torch.allclose(out_a, out_b)


def test_deterministic_for_a_seed(pipe):
    req = PolicyRequest(
        image=_image(64, 64), prompt="wave", domain_name="umi", chunk_size=4, num_inference_steps=3
    )
    fast = FastPolicyBackend(pipe)
    a, b = fast.run(req).actions, fast.run(req).actions
    np.testing.assert_array_equal(a, b)


def test_rejects_unknown_domain(pipe):
    req = PolicyRequest(image=_image(64, 64), prompt="x", domain_name="no_such_robot", num_inference_steps=1)
    with pytest.raises(ValueError, match="no_such_robot"):
        FastPolicyBackend(pipe).run(req)


def test_rejects_pipeline_without_actions(tmp_path):
    path = make_tiny_pipeline(tmp_path / "noact", seed=0, action_gen=False)
    p = DiffusionPipeline.from_pretrained(str(path))
    with pytest.raises(ValueError, match="action_gen"):
        FastPolicyBackend(p)


def test_rejects_wrong_dtype(pipe):
    with pytest.raises(ValueError, match="dtype"):
        FastPolicyBackend(pipe, dtype=torch.bfloat16)


def test_sampler_coefficients_reproduce_the_scheduler(pipe):
    """The precomputed linear form of the pipeline's UniPC scheduler gives the scheduler's own trajectory."""
    import copy

    steps = 12
    a, b, _ = linear_sampler_coefficients(pipe.scheduler, steps)
    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(steps, device="cpu")
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 3, 5, 4, generator=gen)
    vs = [torch.randn(1, 3, 5, 4, generator=gen) for _ in range(steps)]
    x = x0
    for i, t in enumerate(sched.timesteps):
        x = sched.step(vs[i].unsqueeze(0), t, x.unsqueeze(0), return_dict=False)[0].squeeze(0)
        ours = a[i] * x0.double() + sum(b[i, j] * vs[j].double() for j in range(i + 1))
        assert relative_l2(ours.numpy(), x.numpy()) < 1e-6, f"step {i}"
    assert b[-1, 0] != 0 and np.all(b[np.triu_indices(steps, 1)] == 0)  # causal, and not trivially zero


@pytest.mark.parametrize("hw", [(256, 256), (250, 333), (480, 640)])
def test_conditioning_frame_is_scaled_like_a_pil_image(pipe, hw):
    """The fast path's frame equals the pipeline's PIL-image path, in [-1, 1] (a raw uint8 array is not)."""
    img = _image(*hw, seed=7)
    fast = FastPolicyBackend(pipe)
    ours = pipe._prepare_action_video_conditioning([fast.image_tensor(img)], 256, 1, "cpu", torch.float32)[0]
    ref = pipe._prepare_action_video_conditioning([Image.fromarray(img)], 256, 1, "cpu", torch.float32)[0]
    raw = pipe._prepare_action_video_conditioning([img], 256, 1, "cpu", torch.float32)[0]
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-5)
    assert ours.min() >= -1.0 and ours.max() <= 1.0
    assert raw.max() > 2.0  # the mis-scaling this guards against is real in the installed diffusers


def test_guidance_steppers_never_share_a_graph(pipe, monkeypatch):
    """The conditional and unconditional passes of one plan get separate captured graphs even when their
    layouts have the same shape (a goal and the empty negative prompt of the same token length): with one
    shared graph the second ``load`` would overwrite the first's text keys/values (CUDA graphs only run on
    a GPU, so the capture is replaced by a stand-in that keeps the buffers it was given)."""
    import cosmos_ros.runtime.fast as fast

    class FakeGraph:
        def __init__(self, backend, layout, bufs):
            self.bufs = bufs

    monkeypatch.setattr(fast, "_GraphedStep", FakeGraph)
    backend = FastPolicyBackend(pipe)
    req = PolicyRequest(
        image=_image(64, 64), prompt="pick", domain_name="robomind-franka", guidance_scale=3.0
    )
    plan = backend.prepare(req, torch.Generator("cpu").manual_seed(0))
    assert len(plan.layouts) == 2  # guidance > 1: conditional and unconditional
    cond = plan.layouts[0]
    backend.use_cuda_graph = True
    a, b = backend._stepper(cond, 0), backend._stepper(cond, 1)  # the same layout key in both slots
    assert a is not b
    assert a.bufs is not b.bufs
    assert backend._stepper(cond, 0) is a  # still cached per slot
