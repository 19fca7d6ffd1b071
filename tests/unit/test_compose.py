"""docker-compose.yml for a laptop with Docker, checked where no Docker engine runs (issue 19, item 11).

`docker compose config` validates it where the client has the compose plugin; everywhere a
YAML-level check says what an operator would look for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DOC = yaml.safe_load(COMPOSE.read_text())
SERVICES = DOC["services"]


def test_every_part_is_there_with_pinned_images_and_data_volumes() -> None:
    assert {"kafka", "minio", "storage-init", "worker", "api"} <= set(SERVICES)
    images = [s["image"] for s in SERVICES.values() if "image" in s]
    assert images and all(":" in i and not i.endswith(":latest") for i in images), images
    assert set(DOC["volumes"]) == {"kafka-data", "minio-data"}
    assert "kafka-data:/var/lib/kafka/data" in SERVICES["kafka"]["volumes"]
    assert "minio-data:/data" in SERVICES["minio"]["volumes"]


def test_the_long_running_services_have_healthchecks_and_wait_for_what_they_need() -> None:
    for name in ("worker", "api"):
        service = SERVICES[name]
        assert "healthcheck" in service, name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["storage-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["worker"]["environment"]["CALLVAULT_WORKER_HTTP_HOST"] == "0.0.0.0"


def test_a_real_broker_gets_real_group_timing_and_no_dev_secret() -> None:
    env = SERVICES["api"]["environment"]
    assert int(env["CALLVAULT_BROKER_SESSION_TIMEOUT_S"]) >= 30
    assert int(env["CALLVAULT_BROKER_REBALANCE_TIMEOUT_S"]) >= 30
    secrets = ("CALLVAULT_PSEUDONYM_KEY", "CALLVAULT_API_TOKEN_SECRET", "CALLVAULT_AUDIT_SIGNING_KEY",
               "CALLVAULT_S3_SECRET_KEY")  # fmt: skip
    for secret in secrets:
        assert env[secret].startswith("${") and ":?" in env[secret], f"{secret} must come from .env"


def test_docker_compose_accepts_it() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker client with the compose plugin here; the checks above read the YAML")
    env = {
        "MINIO_ROOT_PASSWORD": "x" * 32,
        "CALLVAULT_PSEUDONYM_KEY": "a" * 64,
        "CALLVAULT_API_TOKEN_SECRET": "b" * 64,
        "CALLVAULT_AUDIT_SIGNING_KEY": "c" * 64,
    }
    command = [docker, "compose", "-f", str(COMPOSE), "config", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr


def test_the_image_is_built_with_pinned_versions() -> None:
    """The Dockerfile installs with the constraints `make constraints` writes (issue 19, item 10)."""
    root = COMPOSE.parent
    assert "pip install -c deploy/constraints.txt ." in (root / "Dockerfile").read_text()
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (root / "deploy" / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower().replace("_", "-")
        for dep in project["dependencies"]
    }
    assert wanted <= pins, f"not pinned: {sorted(wanted - pins)}"
