"""A scheduled deployment of the pipeline registers on a real Prefect server with its cron."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_scheduled_deployment_has_cron_and_recipe():
    from prefect.client.orchestration import get_client

    from infuse.deploy.schedule import build_deployment

    dep = build_deployment("recipes/demo.yaml", cron="0 2 * * *")
    dep_id = dep.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(dep_id)
        schedules = client.read_deployment_schedules(dep_id)
    assert stored.name == "demo"
    assert stored.parameters["recipe_path"].endswith("recipes/demo.yaml")
    assert [s.schedule.cron for s in schedules] == ["0 2 * * *"]
    assert all(s.active for s in schedules)
