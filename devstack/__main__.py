"""``python -m devstack up|down|status|demo``: what ``make up``, ``down``, ``status`` and ``demo`` run.

``python -m devstack grant --topic T --dead-letter-topic D`` gives the pipeline's Kafka principals the same
rights on T and D as on clickstream-events and its dead-letter topic (include/kafka/acls.template), for a
run of the DAGs with other topics.
"""

from __future__ import annotations

import argparse
import sys

from devstack import stack
from devstack.errors import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The local stack under supervisord.")
    parser.add_argument("action", choices=["up", "down", "status", "demo", "grant"])
    parser.add_argument("--dag-id", default="clickstream_pipeline", help="demo: the DAG to trigger")
    parser.add_argument("--timeout", type=float, default=600, help="demo: seconds to wait for the run")
    parser.add_argument("--topic", help="grant: an events topic the DAGs should use")
    parser.add_argument("--dead-letter-topic", help="grant: its dead-letter topic (default: <topic>-dlq)")
    args = parser.parse_args(argv)
    try:
        if args.action == "demo":
            from devstack import demo

            return demo.run(args.dag_id, args.timeout)
        if args.action == "grant":
            if not args.topic:
                parser.error("grant needs --topic")
            stack.grant(args.topic, args.dead_letter_topic or f"{args.topic}-dlq")
        elif args.action == "up":
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
