"""``python -m bench [pods|lifecycle|probes|api|cluster|all|soak] [options]``

``all`` is the benchmarks; ``soak`` (a 10-minute endurance run with end checks) runs alone.
"""

from __future__ import annotations

import argparse

from bench import api, cluster, lifecycle, pods, probes, soak


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["pods", "lifecycle", "probes", "api", "cluster", "all", "soak"],
    )
    parser.add_argument("--rounds", type=int, default=3, help="pods: paired rounds (default 3)")
    parser.add_argument(
        "--sizes",
        default="1,10,50",
        type=lambda s: [int(x) for x in s.split(",") if x],
        help="pods: pod counts per sample (default 1,10,50)",
    )
    parser.add_argument("--samples", type=int, default=50, help="lifecycle: kills (default 50)")
    parser.add_argument("--idle-pods", type=int, default=110, help="lifecycle: default 110")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="lifecycle: default 60")
    parser.add_argument("--probe-pods", type=int, default=110, help="probes: default 110")
    parser.add_argument("--probe-seconds", type=float, default=60.0, help="probes: default 60")
    parser.add_argument("--cluster-pods", type=int, default=110, help="cluster: default 110")
    parser.add_argument(
        "--cluster-seconds", type=float, default=60.0, help="cluster: window (default 60)"
    )
    parser.add_argument(
        "--cluster-rounds", type=int, default=3, help="cluster: CPU window pairs (default 3)"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="soak: churn (default 10)")
    parser.add_argument("--soak-pods", type=int, default=110, help="soak: default 110")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=soak.DEFAULT_SETTLE,
        help=f"soak: deadline for the end checks after churn (default {soak.DEFAULT_SETTLE:g})",
    )
    parser.add_argument("--seed", type=int, default=None, help="soak: random seed (default: new)")
    args = parser.parse_args()
    if args.which == "soak":
        raise SystemExit(soak.main(args.soak_pods, args.minutes, args.settle_seconds, args.seed))
    if args.which in ("pods", "all"):
        pods.main(args.rounds, args.sizes)
    if args.which in ("lifecycle", "all"):
        lifecycle.main(args.samples, args.idle_pods, args.idle_seconds)
    if args.which in ("probes", "all"):
        probes.main(args.probe_pods, args.probe_seconds)
    if args.which in ("api", "all"):
        api.main(args.rounds)
    if args.which in ("cluster", "all"):
        cluster.main(args.cluster_pods, args.cluster_seconds, args.cluster_rounds)


if __name__ == "__main__":
    main()
