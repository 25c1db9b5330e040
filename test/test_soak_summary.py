"""soak.summary (issue 9): memory growth, frame-gap change and the jitter trend from the per-interval rows."""

from __future__ import annotations

import pytest

from cosmos_ros.tools import soak


def _row(i: int, rss: float, p50: float, p99: float, published: int, received: int) -> soak.Row:
    return soak.Row(
        minute=float(i), rss_mib={n: rss for n in soak.PROCS}, frames_published=published,
        frames_received=received, frame_sets_dropped=0, tick_p50_ms=p50, tick_p99_ms=p99, tick_max_ms=p99,
        plan_latency_p95_s=0.1, plan_latency_max_s=0.1, plans=10, sim_time_s=float(i),
    )  # fmt: skip


def test_summary_growth_gap_and_jitter_slope_after_warm_up() -> None:
    # The warm-up row (index 0) is wild on purpose: nothing in the summary may depend on it.
    rows = [_row(0, 900.0, 99.0, 999.0, 5, 0)] + [
        _row(i, 100.0 + 2.0 * i, 2.0 + 0.5 * i, 10.0, 30 * i, 30 * i - 3) for i in range(1, 6)
    ]
    s = soak.summary(rows)
    assert s["rss_growth_sim_mib"] == pytest.approx(8.0)
    assert s["frame_gap_change"] == 0.0
    assert s["tick_p50_ms_slope_per_interval"] == pytest.approx(0.5)
    assert s["tick_p99_ms_slope_per_interval"] == pytest.approx(0.0)


def test_summary_needs_a_row_after_warm_up_and_one_more() -> None:
    with pytest.raises(ValueError, match="at least 3 rows"):
        soak.summary([_row(0, 1.0, 1.0, 1.0, 0, 0), _row(1, 1.0, 1.0, 1.0, 0, 0)])
