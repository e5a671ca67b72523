"""``python -m devstack up|down|status``: what ``make up``, ``make down`` and ``make status`` run."""

from __future__ import annotations

import argparse
import sys

from devstack import stack
from devstack.errors import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The local stack under supervisord.")
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
        else:
            return stack.status()
    except StackError as exc:
        print(f"[{args.action}] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
