"""Generate a tiny random-weight ``Cosmos3OmniPipeline`` on disk, entirely offline.

Why: Cosmos 3 weights are not available here (and are far too large for CI), but the runtime must be
tested through exactly the path a real checkpoint takes: ``DiffusionPipeline.from_pretrained(dir)``. This
tool writes a directory with the same layout as ``nvidia/Cosmos3-Nano`` (``model_index.json``,
``transformer/``, ``vae/``, ``text_tokenizer/``, ``scheduler/``) whose components are scaled down to run a
policy call in a second or two on CPU. The weights are random: actions and frames from this model mean
nothing, and nothing may claim planning quality from it.

Shapes kept faithful to the real model where the runtime depends on them:
- VAE: Wan 2.2 style (residual blocks, pixel patchify), 2 spatial down-samplings x patch 4 = 16x spatial,
  2 temporal down-samplings = 4x temporal, so ``scale_factor_spatial=16`` / ``scale_factor_temporal=4``
  are its *real* compression (the pipeline computes latent sizes from these numbers). The real Wan 2.2 VAE
  reaches 16x as 3 down-samplings x patch 2; patch 4 with one level fewer gives the same compression at a
  quarter of the CPU cost (the VAE encode of the whole tier-256 canvas dominates a tiny-model plan).
- Transformer: GQA (more query heads than KV heads), ``latent_patch_size=2``, ``action_gen=True`` with
  ``action_dim=32`` (>= every shipped action-space profile's raw width; Nano uses 64).
- Tokenizer: byte-level BPE (no merges) so any prompt tokenizes, with a chat template, an eos token and the
  ``<|vision_start|>`` token the pipeline appends.
- Scheduler: ``UniPCMultistepScheduler`` with flow sigmas and ``flow_prediction`` (the pipeline integrates
  velocities).

Usage: ``make_tiny_model --out /tmp/tiny_cosmos3 [--seed 0] [--no-action]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Chat template in the Qwen style the Cosmos 3 text pathway uses (system/user/assistant turns delimited by
# <|im_start|> / <|im_end|>). The pipeline calls apply_chat_template(add_generation_prompt=True).
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>")

# Tiny sizes. Changing them changes the stored output slice in test/test_runtime_model.py.
TINY_ACTION_DIM = 32
_LATENT_CHANNELS = 8
# The tiny Wan VAE (16x spatial, 4x temporal, 8 latent channels); the trainer builds the same one.
TINY_VAE_KWARGS: dict[str, object] = {
    "base_dim": 4,
    "z_dim": _LATENT_CHANNELS,
    "dim_mult": [1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [True, True],
    "is_residual": True,
    "in_channels": 48,  # 3 RGB channels x patch 4 x 4
    "out_channels": 48,
    "patch_size": 4,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * _LATENT_CHANNELS,
    "latents_std": [1.0] * _LATENT_CHANNELS,
}


def _build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """Byte-level BPE with the 256 byte symbols and no merges: tokenizes any text, needs no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(_SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|vision_start|>", "<|vision_end|>"],
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def make_tiny_pipeline(out_dir: str | Path, seed: int = 0, action_gen: bool = True) -> Path:
    """Build the tiny pipeline with seeded random weights and ``save_pretrained`` it to ``out_dir``.

    Args:
        out_dir: Directory to write (created; existing files of the same names are overwritten).
        seed: ``torch.manual_seed`` applied before each component, so the same seed gives the same weights.
        action_gen: ``False`` writes a variant without action heads, used to test that the runtime rejects it.

    Returns:
        The output directory as a ``Path``.
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        Cosmos3OmniPipeline,
        Cosmos3OmniTransformer,
        UniPCMultistepScheduler,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer()

    torch.manual_seed(seed)
    transformer = Cosmos3OmniTransformer(
        head_dim=16,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_hidden_layers=2,
        latent_channel=_LATENT_CHANNELS,
        latent_patch_size=2,
        patch_latent_dim=_LATENT_CHANNELS * 2 * 2,
        rope_axes_dim=[4, 2, 2],  # 2 * sum == head_dim
        rope_theta=10000.0,
        vocab_size=len(tokenizer),
        action_gen=action_gen,
        action_dim=TINY_ACTION_DIM if action_gen else None,
        num_embodiment_domains=32,
        dtype="float32",
    )

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**TINY_VAE_KWARGS)

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=5.0,
        num_train_timesteps=1000,
    )

    pipe = Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=tokenizer,
        vae=vae,
        scheduler=scheduler,
        sound_tokenizer=None,
        safety_checker=None,
        enable_safety_checker=False,  # the cosmos_guardrail package is not installed
    )
    pipe.save_pretrained(out, safe_serialization=True)  # type: ignore[attr-defined]  # DiffusionPipeline method
    # A marker so nobody mistakes the directory for a real checkpoint.
    (out / "TINY_RANDOM_MODEL.txt").write_text(
        "Random-weight test model generated by cosmos_ros.tools.make_tiny_model "
        f"(seed={seed}, action_gen={action_gen}). Its outputs mean nothing.\n"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument(
        "--no-action", action="store_true", help="write a variant without action generation (for tests)"
    )
    args = parser.parse_args(argv)
    path = make_tiny_pipeline(args.out, seed=args.seed, action_gen=not args.no_action)
    index = json.loads((path / "model_index.json").read_text())
    comps = sorted(k for k, v in index.items() if isinstance(v, list) and v[0] is not None)
    print(f"wrote tiny random-weight Cosmos3OmniPipeline to {path} (components: {', '.join(comps)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
