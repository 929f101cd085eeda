"""Benchmarks: the agent side by side with a floor measured in the same run.

Run with ``make bench`` (or ``python -m bench --help``). Results are paired,
per-round ratios, printed as a table and written under ``bench/results/``.
"""
