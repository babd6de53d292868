"""The options of ``syncorders prefill`` and ``syncorders growth``, apart from the
commands: building the command line's parser loads these alone, not the stores and
models the commands need (every service builds it when it starts)."""

from __future__ import annotations

import argparse


def prefill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=10_000, help="customers to make (default 10000)")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders to spread over them (default 1000000)")
    parser.add_argument(
        "--pending", type=int, default=100, help="orders left pending long ago, for recovery (default 100)"
    )
    parser.add_argument(
        "--heavy", type=int, default=None, help="orders of the first customer (default: a tenth, at most 5000)"
    )
    parser.add_argument("--days", type=float, default=365.0, help="days the orders span, ending an hour ago")
    parser.add_argument("--batch", type=int, default=5000, help="orders per transaction (default 5000)")
    parser.add_argument("--password", default=None, help="every prefilled customer's password (default: random)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random choices")


def growth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=10_000, help="prefilled customers (default 10000)")
    parser.add_argument("--orders", type=int, default=1_000_000, help="prefilled orders (default 1000000)")
    parser.add_argument("--pending", type=int, default=100, help="prefilled orders left pending (default 100)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8], help="concurrency levels (default 1 8)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level, stack and round (default 5)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads per service (default 16)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the prefill's random choices")
    parser.add_argument("--data-dir", default=None, help="folder for both stacks' data (default: a new temporary one)")
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL URL (e.g. postgresql:///postgres): both stacks on databases made there, dropped after",
    )
