from __future__ import annotations

import importlib
import importlib.metadata

from clickstream import __version__
from clickstream.get_provider_info import get_provider_info


def test_provider_info_matches_the_installed_distribution():
    info = get_provider_info()
    assert info["package-name"] == "clickstream-airflow"
    assert info["versions"][0] == __version__ == importlib.metadata.version("clickstream-airflow")


def test_entry_points_point_at_real_objects():
    eps = importlib.metadata.entry_points()
    (provider,) = [ep for ep in eps.select(group="apache_airflow_provider") if ep.value.startswith("clickstream")]
    assert provider.load() is get_provider_info
    (plugin,) = [ep for ep in eps.select(group="airflow.plugins") if ep.name == "clickstream"]
    assert plugin.load().name == "clickstream"


def test_every_module_the_provider_lists_imports():
    info = get_provider_info()
    kinds = ("hooks", "operators", "sensors", "triggers")
    modules = [m for kind in kinds for entry in info[kind] for m in entry["python-modules"]]
    assert "clickstream.triggers.streaming_job" in modules and "clickstream.sensors.redis_sla" in modules
    for module in modules:
        importlib.import_module(module)
