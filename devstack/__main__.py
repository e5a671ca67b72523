"""``python -m devstack up|down|status|demo``: what ``make up``, ``down``, ``status`` and ``demo`` run."""

from __future__ import annotations

import argparse
import sys

from devstack import stack
from devstack.errors import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The local stack under supervisord.")
    parser.add_argument("action", choices=["up", "down", "status", "demo"])
    parser.add_argument("--dag-id", default="clickstream_pipeline", help="demo: the DAG to trigger")
    parser.add_argument("--timeout", type=float, default=600, help="demo: seconds to wait for the run")
    args = parser.parse_args(argv)
    try:
        if args.action == "demo":
            from devstack import demo

            return demo.run(args.dag_id, args.timeout)
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
