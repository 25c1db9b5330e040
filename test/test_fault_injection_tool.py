"""The fault-injection tool (core, in-process): every scenario stays within the limits (independent checker),
the watchdog brings the output to rest after the planner stops, and a restarted planner is followed again."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmos_ros.safety import load_limits
from cosmos_ros.tools import fault_injection as fi

CONFIG = Path(__file__).resolve().parents[1] / "config" / "limits"


@pytest.mark.parametrize("limits_file", ["arm7_joints.yaml"])
def test_every_fault_stays_within_limits_and_recovers(
    limits_file: str, capsys: pytest.CaptureFixture
) -> None:
    limits = load_limits(CONFIG / limits_file)
    results = {name: fi.run_scenario(limits, name, sc, jump) for name, (sc, jump) in fi.SCENARIOS.items()}
    assert all(r.within_limits for r in results.values()), results
    killed = results["planner killed (no more plans)"]
    assert killed.time_to_rest_s is not None and killed.time_to_recover_s is None
    # At rest by the end of the last chunk (1.07 s) plus braking: well inside 2 s.
    assert killed.time_to_rest_s < 2.0
    for name in ("planner frozen 2 s, then resumed", "planner restarted (new session, plan_id from 1)"):
        assert results[name].time_to_recover_s is not None, name
    assert fi.main(["--limits", str(CONFIG / limits_file)]) == 0
    out = capsys.readouterr().out
    assert "within limits" in out and "NO" not in out.split("\n", 2)[2]
