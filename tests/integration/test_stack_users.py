"""The local stack's Airflow users: generated passwords, kept private, and a viewer who can only read."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request

import pytest
from stack_helpers import LocalStack

from devstack.airflow_api import AirflowApiError
from devstack.airflow_parts import passwords_file

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local_stack")]


def test_ui_passwords_are_generated_kept_private_and_printed_with_where_they_are(local_stack: LocalStack):
    path = passwords_file(local_stack.state / "airflow")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    known = json.loads(path.read_text())
    assert set(known) == {"admin", "viewer"}
    for user, password in known.items():
        assert len(password) >= 20 and password not in ("admin", "viewer", user)
    assert known["admin"] != known["viewer"]
    # `make up` says what they are and where they are kept.
    assert f"kept in {path}" in local_stack.up_output
    assert all(password in local_stack.up_output for password in known.values())


def test_the_viewer_reads_but_cannot_trigger_and_a_wrong_password_gets_no_token(local_stack: LocalStack):
    local_stack.api.wait_for_dag("clickstream_pipeline", 120)
    viewer = local_stack.api_as("viewer")
    assert viewer.get("/api/v2/dags/clickstream_pipeline")["dag_id"] == "clickstream_pipeline"
    with pytest.raises(AirflowApiError) as denied:
        viewer.trigger("clickstream_pipeline")
    assert denied.value.status == 403

    with pytest.raises(AirflowApiError) as refused:
        local_stack.api_as("admin", password="admin").token()
    assert refused.value.status == 401
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{local_stack.api.base}/api/v2/dags", timeout=30)
    assert anonymous.value.code == 401
