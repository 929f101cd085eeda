"""``python -m bench [pods] [--rounds R] [--sizes 1,10,50]``"""

from __future__ import annotations

import argparse

from bench import pods


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="pods", choices=["pods"])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument(
        "--sizes",
        default="1,10,50",
        type=lambda s: [int(x) for x in s.split(",") if x],
        help="pod counts per sample (default 1,10,50)",
    )
    args = parser.parse_args()
    if args.which == "pods":
        pods.main(args.rounds, args.sizes)


if __name__ == "__main__":
    main()
