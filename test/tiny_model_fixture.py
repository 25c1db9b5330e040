"""Session-scoped fixtures that generate the tiny random-weight Cosmos 3 pipeline once per test session.

Why generated, not stored: random weights are a build artefact, and generating them takes a few seconds and
exercises ``cosmos_ros.tools.make_tiny_model`` every run (the one committed model, the *trained*
``cosmos_ros/models/panda_touch_tiny``, is data with a training record). Tests load the random pipeline
through ``DiffusionPipeline.from_pretrained`` exactly like a real checkpoint. ``test/conftest.py`` imports
these fixtures for every test module.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny pipeline with ``action_gen=True`` (weights seed 0)."""
    pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")
    from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

    return make_tiny_pipeline(tmp_path_factory.mktemp("tiny_cosmos3"), seed=0)


@pytest.fixture(scope="session")
def tiny_model_no_action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny pipeline *without* action generation, which the runtime must reject."""
    pytest.importorskip("diffusers", reason="diffusers is needed to build the tiny Cosmos 3 pipeline")
    from cosmos_ros.tools.make_tiny_model import make_tiny_pipeline

    return make_tiny_pipeline(tmp_path_factory.mktemp("tiny_cosmos3_no_action"), seed=0, action_gen=False)
