"""scripts/env.sh: every path it exports belongs to the clone it was sourced from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ENV_SH = Path(__file__).resolve().parents[3] / "scripts" / "env.sh"
PATHS = ("CLICKSTREAM_HOME", "CLICKSTREAM_VENV", "CLICKSTREAM_DEPS", "CLICKSTREAM_STATE", "AIRFLOW_HOME",
         "AIRFLOW_CONFIG", "CLICKSTREAM_SPARK_JARS_DIR")  # fmt: skip


def clone(root: Path) -> Path:
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ENV_SH, root / "scripts" / "env.sh")
    return root


def sourced(*clones: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    script = "; ".join(f"source {c / 'scripts' / 'env.sh'}" for c in clones)
    script += "; " + "; ".join(f'echo "{name}=${{{name}}}"' for name in PATHS)
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env=env or {"PATH": "/usr/bin:/bin"}
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def test_a_shell_that_sourced_another_clone_gets_this_clones_paths(tmp_path):
    first, second = clone(tmp_path / "first"), clone(tmp_path / "second")
    values = sourced(first, second)
    for name in PATHS:
        assert values[name].startswith(str(second)), (name, values[name])


def test_paths_set_for_this_clone_are_kept(tmp_path):
    repo = clone(tmp_path / "repo")
    values = sourced(repo, env={"PATH": "/usr/bin:/bin", "CLICKSTREAM_VENV": str(tmp_path / "venv")})
    assert values["CLICKSTREAM_VENV"] == str(tmp_path / "venv")
    assert values["CLICKSTREAM_DEPS"] == str(repo / ".deps")
