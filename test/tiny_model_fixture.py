"""Session-scoped fixtures that generate the tiny random-weight Cosmos 3 pipeline once per test session.

Why generated, not stored: the model is a build artefact (about 1 MB of random weights) and must never be
committed; generating it takes a few seconds and exercises ``cosmos_ros.tools.make_tiny_model`` every run.
Tests load it through ``DiffusionPipeline.from_pretrained`` exactly like a real checkpoint.

Wire-up: ``test/conftest.py`` imports these (``from tiny_model_fixture import tiny_model_dir,
tiny_model_no_action_dir``); until then, test modules import them directly.
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
