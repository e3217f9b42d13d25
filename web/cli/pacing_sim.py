"""`pratica pacing-sim`: simulate an outbound shift with a chosen pacer and settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pacing.model import PacingSettings
from pacing.policies import Predictive, Progressive, Ratio, VicidialAdaptive
from pacing.sim import Policy, Result, Scenario, Simulation


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pacing-sim", help="simulate a shift to choose pacing settings")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--hours", type=float, default=4.0)
    p.add_argument("--live", type=float, default=0.25, help="live-answer probability")
    p.add_argument(
        "--drift", type=float, nargs="+", metavar="P",
        help="live probability at evenly spaced points of the shift, e.g. 0.15 0.35 0.15",
    )  # fmt: skip
    p.add_argument("--machine", type=float, default=0.15, help="share answered by machines")
    p.add_argument("--talk", type=float, default=180.0, help="mean talk time, seconds")
    p.add_argument("--wrap", type=float, default=20.0, help="mean wrap-up time, seconds")
    p.add_argument(
        "--policy", default="predictive",
        choices=["predictive", "progressive", "power", "vicidial", "vicidial-ready", "foresight"],
    )  # fmt: skip
    p.add_argument("--ratio", type=float, default=2.0, help="power mode: calls per free agent")
    p.add_argument("--target", type=float, default=0.02, help="target abandon rate")
    p.add_argument("--cap", type=float, default=0.03, help="hard cap on the abandon rate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", type=Path, help="write a PNG of abandon rate and occupancy")
    p.set_defaults(func=cmd_pacing_sim)


def _policy(args: argparse.Namespace) -> Policy:
    choices: dict[str, Callable[[], Policy]] = {
        "predictive": Predictive,
        "progressive": Progressive,
        "foresight": lambda: Progressive(name="perfect foresight"),
        "power": lambda: Ratio(args.ratio),
        "vicidial": lambda: VicidialAdaptive(shift_hours=args.hours, cap=args.cap),
        "vicidial-ready": lambda: VicidialAdaptive(
            count_ready_only=True, shift_hours=args.hours, cap=args.cap
        ),
    }
    return choices[args.policy]()


def _plot(result: Result, path: Path, cap: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [h for h, _, _ in result.series]
    fig, left = plt.subplots(figsize=(9, 4.5))
    left.plot(
        hours, [a * 100 for _, a, _ in result.series], color="tab:red", label="abandon rate %"
    )
    left.axhline(cap * 100, color="tab:red", linestyle=":", label="cap")
    left.set_xlabel("hours into the shift")
    left.set_ylabel("abandon rate (% of live answers)")
    right = left.twinx()
    right.plot(
        hours, [o * 100 for _, _, o in result.series], color="tab:blue", label="talk occupancy %"
    )
    right.set_ylabel("agent talk occupancy %")
    fig.legend(loc="lower right")
    left.set_title(f"{result.policy}: {result.agents} agents")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_pacing_sim(args: argparse.Namespace) -> int:
    if args.drift:
        points = args.drift
        live = tuple((i / max(len(points) - 1, 1), p) for i, p in enumerate(points))
    else:
        live = ((0.0, args.live), (1.0, args.live))
    if not all(0 <= p <= 1 for _, p in live) or args.agents < 1 or args.hours <= 0:
        print(
            "pratica: probabilities must be within 0..1, agents and hours positive", file=sys.stderr
        )
        return 2
    try:
        settings = PacingSettings(target_abandon=args.target, hard_cap=args.cap)
    except ValueError as exc:
        print(f"pratica: {exc}", file=sys.stderr)
        return 2
    scenario = Scenario(agents=args.agents, hours=args.hours, live=live, machine=args.machine,
                        talk_mean=args.talk, wrap_mean=args.wrap)  # fmt: skip
    result = Simulation(scenario, _policy(args), seed=args.seed, settings=settings,
                        foresight=args.policy == "foresight").run()  # fmt: skip
    print(f"policy                 {result.policy}")
    print(f"agents / hours         {result.agents} / {result.hours:g}")
    print(f"dials                  {result.dials}")
    print(f"live answers           {result.live}")
    print(
        f"abandoned              {result.abandons} ({result.abandon_rate:.2%} of live answers; cap {args.cap:.0%})"
    )
    print(f"talk occupancy         {result.occupancy:.1%}")
    print(f"connects / agent-hour  {result.connects_per_agent_hour:.1f}")
    print(f"mean agent wait        {result.mean_wait:.1f} s between calls")
    if args.plot:
        _plot(result, args.plot, args.cap)
        print(f"plot written to {args.plot}")
    return 0
