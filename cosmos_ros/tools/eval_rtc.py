"""The real-time execution table (issue 11): closed-loop runs at several emulated latencies x three schedules.

Usage (once the closed-loop simulation, ``cosmos_ros.tools.eval_closed_loop``, is on the branch)::

    python -m cosmos_ros.tools.eval_rtc --model-path DIR --episodes 20 --out bench/rtc_closed_loop_<date>.txt

Each cell is one ``eval_closed_loop.run_row("trained", ...)`` with the emulated latency set to a fraction of
the chunk horizon (sim time, so CPU speed does not matter) and the planner parameters of one schedule
(:data:`SCHEDULES`). The schedules differ only in planner parameters; the safety node is the same in all.

What it needs from ``eval_closed_loop`` (checked at start, with a message naming what is missing):
``run_row(row, episodes, first_seed, model_path, action_space, latency_s, num_inference_steps, work,
domain_id, planner_overrides=...)`` where ``planner_overrides`` updates the planner's parameters, and a
``RowResult`` with ``success_rate``, ``times_to_success``, ``reasons``, ``watchdog_entries``, ``max_jerk``.
At chunk switches it reports the plan-to-plan disagreement (before the safety node) and the controller
inputs' jerk and velocity step just after the switch (``cosmos_ros.sim.switch_metrics``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

LATENCY_FRACTIONS = (0.0, 0.1, 0.3, 0.5, 0.8)
# Per schedule: the sim's camera rate (frames are offered to an idle planner at this rate of sim time) and
# the planner parameters. Today's schedule plans at the default max_plan_rate_hz (2 Hz; the planner's own
# limit counts wall time, which means nothing in lockstep, so the camera paces it). The trigger schedules get
# a frame every step and start only when the executing plan no longer covers the expected latency
# (chunk_size_threshold 0: no start before that). The prefix needs the fast backend.
SCHEDULES: dict[str, tuple[float, dict[str, Any]]] = {
    "skip+crossfade": (2.0, {"early_trigger": False, "prefix_conditioning": False, "backend": "fast"}),
    "early_trigger": (
        15.0,
        {"early_trigger": True, "chunk_size_threshold": 0.0, "prefix_conditioning": False, "backend": "fast"},
    ),
    "early_trigger+prefix": (
        15.0,
        {
            "early_trigger": True,
            "chunk_size_threshold": 0.0,
            "prefix_conditioning": True,
            "prefix_attention_schedule": "exp",
            "backend": "fast",
        },
    ),
}


def _eval_module() -> Any:
    """``eval_closed_loop`` if it offers what this table needs; else SystemExit naming what is missing."""
    try:
        # By name: the module lands with the closed-loop simulation branch, and mypy must not need it.
        ecl = importlib.import_module("cosmos_ros.tools.eval_closed_loop")
    except ImportError as exc:
        raise SystemExit(
            f"eval_rtc needs cosmos_ros.tools.eval_closed_loop (the closed-loop sim): {exc}"
        ) from exc
    params = inspect.signature(ecl.run_row).parameters
    if "planner_overrides" not in params:
        raise SystemExit(
            "eval_closed_loop.run_row has no planner_overrides argument; it needs one that updates the "
            "planner's parameters (planner_params.update(planner_overrides or {}))"
        )
    return ecl


LEGEND = (
    "stale: plans the safety node rejected as stale; watchdog: times it took over from a plan.",
    "jump max / p50: plan-to-plan disagreement at the switch (rad, largest arm joint, before the safety",
    "  node; cosmos_ros.sim.switch_metrics.plan_jumps). sw jerk (rad/s^3) / sw dv (rad/s per tick): the",
    "  controller inputs in the 8 ticks after each switch (bounded by the safety node's limits).",
    "max jerk: the whole run's largest controller-input jerk.",
)


def _cells(r: Any) -> str:
    """One row's numbers (an eval_closed_loop.RowResult)."""
    t = f"{statistics.median(r.times_to_success):.2f}" if r.times_to_success else "-"
    jumps = getattr(r, "plan_jumps", [])
    j_max = f"{max(jumps):.3f}" if jumps else "-"
    j_p50 = f"{statistics.median(jumps):.3f}" if jumps else "-"
    return (
        f"{r.success_rate:>7.1f}% {t:>12} {r.reasons.get('rejected:stale', 0):>6} {r.watchdog_entries:>8} "
        f"{j_max:>9} {j_p50:>9} {r.switch_jerk:>9.0f} {r.switch_velocity_step:>7.3f} {r.max_jerk:>9.0f} "
        f"{r.plans:>6} {r.decisions['rejected']:>8} {r.lockstep_timeouts:>8}"
        + (f"  ERROR: {r.error[:200]}" if r.error else "")
    )


def _limits_copy(ecl: Any, work: Path, staleness_limit_s: float) -> Path:
    """The default limits file with another ``staleness_limit_s`` (everything else, comments too, as is)."""
    text = ecl._limits_path().read_text()
    new, n = re.subn(r"(?m)^staleness_limit_s:.*$", f"staleness_limit_s: {staleness_limit_s}", text)
    if n != 1:
        raise SystemExit(f"expected one staleness_limit_s line in {ecl._limits_path()}, found {n}")
    out = work / "limits_staleness.yaml"
    out.write_text(new)
    return out


def run(args: argparse.Namespace) -> str:
    ecl = _eval_module()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="eval_rtc_"))
    work.mkdir(parents=True, exist_ok=True)
    model, action_space = args.model_path, args.action_space
    if args.row == "random":  # plumbing check: a random-weight tiny model never succeeds
        from cosmos_ros.tools.make_tiny_model import main as make_tiny

        model = str(work / "tiny_random")
        if not (Path(model) / "model_index.json").is_file():
            make_tiny(["--out", model, "--seed", "0"])
    elif not model:
        raise SystemExit("row 'trained' needs --model-path")
    if not action_space:
        own = Path(model) / "action_space.yaml"
        action_space = str(own) if own.is_file() else "arm7_joints"
    horizon = args.chunk_size / args.fps
    limits_file = _limits_copy(ecl, work, args.staleness_limit_s) if args.staleness_limit_s else None
    lines = [
        f"closed loop, {args.episodes} episodes per cell, chunk {args.chunk_size} at {args.fps:g} Hz "
        f"(horizon {horizon:.3f} s), {args.num_inference_steps} steps, row {args.row}, model {model}"
        + (f", staleness_limit_s {args.staleness_limit_s}" if args.staleness_limit_s else ""),
        f"{'latency':>8} {'schedule':<22} {'success':>8} {'t_success s':>12} {'stale':>6} {'watchdog':>8} "
        f"{'jump max':>9} {'jump p50':>9} {'sw jerk':>9} {'sw dv':>7} {'max jerk':>9} {'plans':>6} "
        f"{'rejected':>8} {'timeouts':>8}",
    ]
    print("\n".join(lines), flush=True)
    fractions = [float(f) for f in args.fractions.split(",")]
    names = args.schedules.split(",") if args.schedules else list(SCHEDULES)
    for fraction in fractions:
        for name in names:
            camera_hz, overrides = SCHEDULES[name]
            cell = work / f"{name}_{int(100 * fraction)}"
            cell.mkdir(parents=True, exist_ok=True)
            r = ecl.run_row(
                args.row,
                args.episodes,
                args.first_seed,
                model,
                action_space,
                fraction * horizon,
                args.num_inference_steps,
                cell,
                ecl.row_domain(args.domain_id, 0),
                plan_rate_hz=camera_hz,
                planner_overrides={**overrides, "chunk_size": args.chunk_size, "fps": args.fps},
                limits_file=limits_file,
            )
            lines.append(f"{100 * fraction:>7.0f}% {name:<22} " + _cells(r))
            print(lines[-1], flush=True)  # a long run's finished cells stay visible if it is stopped
    lines.extend(LEGEND)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-path", default="", help="trained pipeline directory (row trained)")
    p.add_argument("--row", default="trained", choices=("trained", "random"), help="eval_closed_loop row")
    p.add_argument("--fractions", default=",".join(str(f) for f in LATENCY_FRACTIONS))
    p.add_argument("--schedules", default="", help=f"comma-separated subset of {','.join(SCHEDULES)}")
    p.add_argument("--action-space", default="", help="profile; default: <model-path>/action_space.yaml")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=1_000_000)
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--num-inference-steps", type=int, default=10)
    p.add_argument(
        "--staleness-limit-s",
        type=float,
        default=None,
        help="run the safety node on a copy of the limits file with this staleness_limit_s",
    )
    p.add_argument("--work-dir", default="")
    p.add_argument(
        "--domain-id", type=int, default=None, help="ROS domain of every cell (default: from the pid, 1..100)"
    )
    p.add_argument("--out", default="", help="also write the table to this file")
    args = p.parse_args(argv)
    text = run(args)
    sys.stdout.write("\n".join(LEGEND) + "\n")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
