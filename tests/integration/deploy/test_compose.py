"""docker-compose.yml, checked without a Docker engine: Docker Compose itself (built from its Go module by
`make setup`) must accept it, and what it mounts, exposes and scrapes must match the repository."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from devstack.paths import DEPS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
COMPOSE = DEPS / "bin/docker-compose"
TARGETS = REPO / "include/monitoring/compose/prometheus-targets"


@pytest.fixture(scope="module")
def project() -> dict:
    assert COMPOSE.is_file(), f"{COMPOSE} is missing: run `scripts/setup.sh --test-tools` (make test does)"
    result = subprocess.run(
        [str(COMPOSE), "--env-file", ".env.example", "-f", "docker-compose.yml", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    print(f"docker compose config: exit 0, {len(json.loads(result.stdout)['services'])} services")
    return json.loads(result.stdout)


def test_the_services_the_issue_names_are_all_there(project):
    services = set(project["services"])
    assert {
        "kafka", "redis", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "spark-master", "spark-worker", "prometheus",
        "statsd-exporter", "alertmanager", "grafana", "redis-exporter", "mailpit",
    } <= services  # fmt: skip


def test_every_long_running_service_has_a_health_check_and_waits_on_conditions(project):
    one_shot = {"airflow-init", "jmx-agent", "alertmanager-config"}
    for name, service in project["services"].items():
        if name not in one_shot and name != "redis-exporter":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how["condition"] in {"service_healthy", "service_completed_successfully"}, (name, dependency)
    scheduler = project["services"]["airflow-scheduler"]["depends_on"]
    assert scheduler["airflow-init"]["condition"] == "service_completed_successfully"
    assert scheduler["kafka"]["condition"] == "service_healthy"


def test_every_mounted_file_is_the_repository_file_itself(project):
    mounted = []
    for name, service in project["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.exists(), f"{name} mounts {source}, which does not exist"
                assert source.is_relative_to(REPO)
                mounted.append(source.relative_to(REPO).as_posix())
    for shared in (
        "include/monitoring/prometheus/prometheus.yml",
        "include/monitoring/prometheus/rules",
        "include/monitoring/statsd/mapping.yml",
        "include/monitoring/grafana/dashboards",
        "include/monitoring/grafana/provisioning",
        "include/monitoring/kafka/jmx-exporter.yml",
        "include/kafka/server.properties",
        "airflow_home/airflow.cfg",
        "dags",
        "include",
    ):
        assert shared in mounted, f"{shared} is not mounted"


def published(project: dict, service: str) -> set[int]:
    return {int(p["published"]) for p in project["services"][service].get("ports", []) if p.get("published")}


def test_ports_are_the_seeds_and_the_readmes(project):
    expected = {
        "kafka": 9092, "prometheus": 9090, "grafana": 3000, "alertmanager": 9093, "redis-exporter": 9121,
        "statsd-exporter": 9102, "airflow-apiserver": 8080, "redis": 6379, "mailpit": 8025,
    }  # fmt: skip
    readme = (REPO / "README.md").read_text()
    docker_section = readme.split("## Docker", 1)[1].split("\n## ", 1)[0]
    for service, port in expected.items():
        assert port in published(project, service), f"{service} does not publish {port}"
        assert f"| `{service}` |" in docker_section and f"{port}" in docker_section, f"README lacks {service}"


def test_prometheus_targets_name_compose_services_and_their_ports(project):
    for target_file in sorted(TARGETS.glob("*.json")):
        for group in json.loads(target_file.read_text()):
            for target in group["targets"]:
                host, port = target.split(":")
                assert host in project["services"], f"{target_file.name}: {host} is not a compose service"
                service = project["services"][host]
                exposed = published(project, host) | {int(p) for p in service.get("expose", [])}
                assert int(port) in exposed, f"{target_file.name}: {host} does not expose {port}"
    scraped = set(
        re.findall(r"targets/([\w-]+)\.json", (REPO / "include/monitoring/prometheus/prometheus.yml").read_text())
    )
    assert scraped == {p.stem for p in TARGETS.glob("*.json")}


def test_no_secret_has_a_value_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    secrets = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_VIEWER_PASSWORD",
               "GRAFANA_ADMIN_PASSWORD", *(f"REDIS_{user}_PASSWORD" for user in
                                           ("WRITER", "RECONCILER", "READER", "MONITOR", "ADMIN")))  # fmt: skip
    for secret in secrets:
        assert f"${{{secret}:?" in text
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text().split()


def test_the_ui_users_passwords_come_from_env_into_a_private_file(project):
    init, api = project["services"]["airflow-init"], project["services"]["airflow-apiserver"]
    path = api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer"
    script = " ".join(init["command"])
    assert script.startswith("umask 077 ") and f"> {path} " in script and script.endswith("airflow db migrate")
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"] == "change-me"  # from .env.example
    # Only the init container sees the passwords; the long-running components read the file.
    assert not {"AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_VIEWER_PASSWORD"} & set(api["environment"])


def test_compose_renders_redis_acl_users_as_the_local_stack_does(project, tmp_path):
    """The redis service's start script, run here by sh on the same template, writes the ACL file devstack
    writes for the same passwords (paths moved into a temporary folder, the final exec left out)."""
    from devstack.redis_server import USERS, RedisServer

    service = project["services"]["redis"]
    script = service["command"][2].replace("$$", "$")  # what compose hands to sh
    script = script.replace("/etc/clickstream/users.acl.template", str(REPO / "include/redis/users.acl.template"))
    script = script.replace("/data", str(tmp_path / "data")).split("\nchown ")[0]
    (tmp_path / "data").mkdir()
    env = {key: service["environment"][key] for key in service["environment"] if key.startswith("REDIS_")}
    result = subprocess.run(["sh", "-ec", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {f"REDIS_{user.upper()}_PASSWORD" for user in USERS} == set(env)

    local = RedisServer(tmp_path / "local", 6379)
    local.workdir.mkdir()
    local.passwords_file.write_text(json.dumps({user: env[f"REDIS_{user.upper()}_PASSWORD"] for user in USERS}))
    local.prepare()
    assert (tmp_path / "data" / "users.acl").read_text() == local.acl_file.read_text()
    assert stat.S_IMODE((tmp_path / "data" / "users.acl").stat().st_mode) == 0o600
    # Each Airflow connection and the exporter use the user of that name.
    airflow = project["services"]["airflow-scheduler"]["environment"]
    for conn, user in (("DEFAULT", "writer"), ("RECONCILER", "reconciler"), ("READER", "reader"), ("ADMIN", "admin")):
        assert airflow[f"AIRFLOW_CONN_REDIS_{conn}"].startswith(
            f"redis://{user}:{env[f'REDIS_{user.upper()}_PASSWORD']}@"
        )
    assert project["services"]["redis-exporter"]["environment"]["REDIS_USER"] == "monitor"
