"""The running local stack that the whole-stack tests share: one `make up` for all of them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from stack_helpers import REPO, LocalStack, local_stack_on_free_ports, up_and_check


@pytest.fixture(scope="session")
def local_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """`make up` once for the tests marked ``xdist_group("local_stack")``, which run on one worker, in order.

    Each test leaves the stack running and healthy for the next. On a failure, or with
    CLICKSTREAM_KEEP_STACK_LOGS set, the stack's logs are kept under ``.state/stack-test-logs``.
    """
    running = local_stack_on_free_ports()
    try:
        running.up_output = up_and_check(running.env)
        yield running
    finally:
        teardown(request, running)


def teardown(request: pytest.FixtureRequest, running: LocalStack) -> None:
    if request.session.testsfailed or os.environ.get("CLICKSTREAM_KEEP_STACK_LOGS"):
        kept = REPO / ".state" / "stack-test-logs"
        running.keep_logs(kept)
        print(f"the stack's logs are kept in {kept}")
    running.down_and_check()
    shutil.rmtree(running.root, ignore_errors=True)
