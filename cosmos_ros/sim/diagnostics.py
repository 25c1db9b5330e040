"""The simulator node's diagnostics as a pure function: counters in, level, summary and key/values out."""

from __future__ import annotations

from collections.abc import Mapping

from cosmos_ros.diagnostics import DiagnosticsReport, Level


def sim_diagnostics(
    sim_time_s: float, episodes_done: int, successes: int, refusals: Mapping[str, int]
) -> DiagnosticsReport:
    """Sim time, episodes, successes and setpoints the sim's gate refused (by reason; a refusal warns)."""
    values = {
        "sim_time_s": f"{sim_time_s:.3f}",
        "episodes_done": str(episodes_done),
        "successes": str(successes),
        **{f"refused_{k}": str(v) for k, v in sorted(refusals.items())},
    }
    refused = sum(refusals.values())
    if refused:
        return DiagnosticsReport(Level.WARN, f"{refused} setpoints refused", values)
    return DiagnosticsReport(Level.OK, "ok", values)
