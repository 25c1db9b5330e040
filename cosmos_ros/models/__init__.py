"""Trained models shipped with the package (small enough to commit; each directory says how it was made).

- ``panda_touch_tiny/``: a tiny ``Cosmos3OmniPipeline`` (random-initialised ``Cosmos3OmniTransformer``
  trained from scratch by ``cosmos_ros.tools.train_tiny_policy``) for the simulated "touch the <colour> cube"
  Panda task. Its action space is ``panda_touch_tiny/action_space.yaml`` (the ``arm7_joints`` layout with
  this checkpoint's statistics); its ``training.json`` records the data, settings and losses. It says
  nothing about any released Cosmos 3 checkpoint.
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
PANDA_TOUCH_TINY = MODELS_DIR / "panda_touch_tiny"
PROFILE_FILE = "action_space.yaml"


def profile_path(model_dir: str | Path) -> Path:
    """The action-space profile saved next to a trained model (pass it as the planner's ``action_space``)."""
    return Path(model_dir) / PROFILE_FILE
