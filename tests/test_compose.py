"""Static checks of docker-compose.yml and the Dockerfile: they must agree with the repository."""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from activities.config import Settings
from activities.memory import MemoryStore
from tests.memory.conftest import pattern
from tests.support.postgres import PASSWORD, USER, LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("worker", "api")
OUR_ENV_PREFIXES = ("STEPGATE_", "TEMPORAL_")
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
MEMORY_SETUP = "memory-db-setup"
MEMORY_SQL = "./deploy/memory-db.sql"
ENSURE_SERVER = (ROOT / "scripts" / "ensure-temporal-server").read_text(encoding="utf-8")
# The releases scripts/cluster builds and runs: the compose stack runs the same ones.
TEMPORAL_VERSION = re.search(r'^version="([0-9.]+)"$', ENSURE_SERVER, re.MULTILINE)
UI_VERSION = re.search(r'^ui_version="([0-9.]+)"$', ENSURE_SERVER, re.MULTILINE)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(volume["source"])
        elif volume.split(":", 1)[0].startswith((".", "/", "~")):
            sources.append(volume.split(":", 1)[0])
    return sources


def _command_target(command: list[str]) -> Path:
    if "-m" in command:
        module = command[command.index("-m") + 1].replace(".", "/")
        package_main = ROOT / module / "__main__.py"
        return package_main if package_main.parent.is_dir() else ROOT / f"{module}.py"
    script = next(arg for arg in command if arg.endswith(".py"))
    return ROOT / script


def test_build_contexts_exist_with_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    """Every service built from source points at a folder that holds the Dockerfile it names."""
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert built, "no service is built from this repository"
    for name, build in built.items():
        spec = {"context": build} if isinstance(build, str) else build
        context = spec.get("context", ".")
        dockerfile = spec.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file(), f"{name}: {context}/{dockerfile} missing"


def test_bind_mounts_exist_in_repository(services: dict[str, dict[str, Any]]) -> None:
    """Every host path bind-mounted into a container is a file or folder of the repository."""
    for name, svc in services.items():
        for source in _bind_sources(svc):
            assert (ROOT / source).exists(), f"{name}: bind mount source {source} missing"


def test_depends_on_names_defined_services_with_matching_condition(
    services: dict[str, dict[str, Any]],
) -> None:
    """A dependency waits for health when the target has a healthcheck, else for it to finish."""
    for name, svc in services.items():
        for target, condition in _depends_on(svc).items():
            assert target in services, f"{name} depends on undefined service {target}"
            if "healthcheck" in services[target]:
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
            else:
                assert condition == "service_completed_successfully", (
                    f"{name} -> {target}: {condition} on a service without a healthcheck"
                )


def test_depended_on_services_have_healthcheck_unless_one_shot(
    services: dict[str, dict[str, Any]],
) -> None:
    """Services that others wait for declare a healthcheck, unless they are one-shot jobs."""
    targets = {target for svc in services.values() for target in _depends_on(svc)}
    for target in targets:
        svc = services[target]
        if "healthcheck" not in svc:
            assert svc.get("restart") == "no", f"{target} has no healthcheck and is not one-shot"


def test_worker_scalable_without_fixed_names_or_ports(services: dict[str, dict[str, Any]]) -> None:
    """The worker has no container name and no host port, so `--scale worker=N` works."""
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name allows one worker only"
    assert not worker.get("ports"), "a host port allows one worker only"


def test_app_env_vars_known_to_settings(services: dict[str, dict[str, Any]]) -> None:
    """Every STEPGATE_*/TEMPORAL_* variable given to the worker or API is a Settings field."""
    for name in APP_SERVICES:
        ours = {key for key in _environment(services[name]) if key.startswith(OUR_ENV_PREFIXES)}
        assert ours <= SETTINGS_ENV, f"{name}: unknown settings {sorted(ours - SETTINGS_ENV)}"


def test_dockerfile_env_vars_known_to_settings() -> None:
    """Every STEPGATE_*/TEMPORAL_* default baked into the image is a Settings field."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    baked = set(re.findall(r"\b((?:STEPGATE|TEMPORAL)_[A-Z0-9_]+)=", text))
    assert baked <= SETTINGS_ENV, f"unknown settings {sorted(baked - SETTINGS_ENV)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_command_targets_existing_entry_point(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """The worker and API commands run an entry point that exists in the repository."""
    command = services[name]["command"]
    assert isinstance(command, list), f"{name}: use the exec form for command"
    target = _command_target(command)
    assert target.is_file(), f"{name}: {' '.join(command)} needs {target.relative_to(ROOT)}"


def test_example_api_keys_file_has_contract_shape() -> None:
    """The mounted example keys file is a list of {key, principal, roles} as the API expects."""
    entries = yaml.safe_load((ROOT / "deploy" / "api-keys.example.yaml").read_text("utf-8"))
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) == {"key", "principal", "roles"}
        assert isinstance(entry["roles"], list)


def test_worker_and_api_read_the_same_keys_file(services: dict[str, dict[str, Any]]) -> None:
    """The worker gets the API's keys file (mounted, same path), so scheduled runs can be
    re-checked against the keys the API accepts."""
    paths = {
        name: _environment(services[name]).get("STEPGATE_API_KEYS_FILE") for name in APP_SERVICES
    }
    assert paths["worker"] and paths["worker"] == paths["api"], paths
    for name in APP_SERVICES:
        targets = [v.split(":")[1] for v in services[name].get("volumes") or [] if ":" in v]
        assert paths[name] in targets, f"{name}: {paths[name]} is not mounted"


def _memory_url(services: dict[str, dict[str, Any]]) -> str:
    urls = {_environment(services[name]).get("STEPGATE_DATABASE_URL") for name in APP_SERVICES}
    assert len(urls) == 1, f"the worker and the API use different memories: {urls}"
    url = urls.pop()
    assert url, "STEPGATE_DATABASE_URL is not set: each container would keep its own SQLite file"
    return url


def test_worker_and_api_share_the_compose_postgres_memory(
    services: dict[str, dict[str, Any]],
) -> None:
    """The worker and the API point STEPGATE_DATABASE_URL at the compose PostgreSQL, in a
    database and user of their own (not Temporal's), created before either starts."""
    url = urlsplit(_memory_url(services))
    assert url.scheme == "postgresql"
    assert url.hostname in services and "postgres" in services[url.hostname]["image"]
    temporal_user = _environment(services[url.hostname])["POSTGRES_USER"]
    assert url.username and url.username != temporal_user
    assert url.path.strip("/") not in ("", "temporal", "temporal_visibility", "postgres")
    for name in APP_SERVICES:
        assert _depends_on(services[name]).get(MEMORY_SETUP) == "service_completed_successfully"
    setup = services[MEMORY_SETUP]
    assert _depends_on(setup) == {url.hostname: "service_healthy"}
    assert MEMORY_SQL in [v.split(":")[0] for v in setup["volumes"]]


async def test_memory_setup_script_creates_the_database_the_url_names(
    services: dict[str, dict[str, Any]], postgres: LocalPostgres
) -> None:
    """deploy/memory-db.sql, run twice as compose runs it, creates the user and database that
    STEPGATE_DATABASE_URL names; the memory migrates and works there with those credentials."""
    script = ROOT / MEMORY_SQL
    psql = [str(postgres.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port)]
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(
            *psql,
            *("-U", USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script)),
            env={**os.environ, "PGPASSWORD": PASSWORD},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
    url = urlsplit(_memory_url(services))
    local = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{postgres.port}")
    store = MemoryStore.from_settings(
        Settings(stepgate_database_url=urlunsplit(local), _env_file=None)  # type: ignore[call-arg]
    )
    try:
        assert await store.start() is True
        found = await store.write(pattern("compose-1", "scale the compose workers"))
        assert [h.id for h in await store.search("compose workers", 5)] == [found]
    finally:
        await store.close()


def test_dockerfile_copies_the_product_only() -> None:
    """The image holds the packages the worker and API import and the catalog, never the test
    suite, the benchmarks or the operator scripts."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = {
        src for line in text.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]
    }
    assert {"activities", "api", "workflows", "definitions", "worker.py"} <= copied
    assert not copied & {".", "tests", "bench", "scripts"}, copied


LLM_SHARED = ("STEPGATE_LLM_BASE_URL", "STEPGATE_LLM_MODEL")


def test_worker_and_api_get_the_same_llm_endpoint_and_only_the_worker_its_key(
    services: dict[str, dict[str, Any]],
) -> None:
    """The API refuses to start a pipeline that needs an LLM unless it has an endpoint itself,
    so the compose file passes the same LLM base URL and model, from the environment, to both;
    the key, which only the worker's llm.chat sends, goes to the worker alone."""
    envs = {name: _environment(services[name]) for name in APP_SERVICES}
    for setting in LLM_SHARED:
        values = {name: envs[name].get(setting) for name in APP_SERVICES}
        assert values["worker"] == values["api"] == f"${{{setting}:-}}", values
    assert envs["worker"]["STEPGATE_LLM_API_KEY"] == "${STEPGATE_LLM_API_KEY:-}"
    assert "STEPGATE_LLM_API_KEY" not in envs["api"]


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text("utf-8"))
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _mounted(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of each bind mount."""
    return {
        v.split(":")[1]: v.split(":")[0] for v in service.get("volumes") or [] if v.startswith(".")
    }


def test_prometheus_scrapes_the_api_with_a_key_that_may_read_only_metrics(
    services: dict[str, dict[str, Any]],
) -> None:
    """Prometheus reads the API's /metrics with a bearer key from a mounted file; the key is in
    the keys file the API reads, and its roles hold `metrics` and no other permission."""
    job = _scrape_jobs()["stepgate-api"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    auth = job["authorization"]
    assert auth["type"] == "Bearer"
    source = _mounted(services["prometheus"])[auth["credentials_file"]]
    key = (ROOT / source).read_text("utf-8").strip()
    entries = yaml.safe_load((ROOT / "deploy" / "api-keys.example.yaml").read_text("utf-8"))
    roles = next(e["roles"] for e in entries if e["key"] == key)
    api = services["api"]
    permissions_file = _environment(api)["STEPGATE_PERMISSIONS_FILE"]
    granted = yaml.safe_load((ROOT / _mounted(api)[permissions_file]).read_text("utf-8"))
    assert {p for role in roles for p in granted[role]} == {"metrics"}


def test_prometheus_finds_every_worker_on_its_metrics_port(
    services: dict[str, dict[str, Any]],
) -> None:
    """The worker serves metrics on the port Prometheus looks up each replica on by DNS."""
    address = _environment(services["worker"])["STEPGATE_WORKER_METRICS_ADDRESS"]
    sd = _scrape_jobs()["stepgate-worker"]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and int(address.rsplit(":", 1)[1]) == sd["port"]
    assert "prometheus.yml" in "".join(_mounted(services["prometheus"]).values())


def test_grafana_dashboard_charts_only_metrics_stepgate_serves(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every stepgate_* series the dashboard queries is one the API or the worker serves, and
    Grafana is provisioned with it and with Prometheus as its data source."""
    from activities import metrics as step_metrics
    from api import gates_open
    from api import metrics as api_metrics
    from workflows import metrics as workflow_metrics

    served = {
        api_metrics.REQUESTS,
        api_metrics.DURATION,
        gates_open.GAUGE,
        gates_open.AGE,
        gates_open.ERRORS,
        step_metrics.STEPS,
        step_metrics.STEP_DURATION,
        workflow_metrics.DECISIONS,
        workflow_metrics.GATE_DECISION,
        workflow_metrics.REFUSALS,
        workflow_metrics.LAPSED,
        workflow_metrics.TIMEOUTS,
        workflow_metrics.ESCALATIONS,
        workflow_metrics.REMINDERS,
        workflow_metrics.DECISION_TO_STEP,
        workflow_metrics.RUNS_STARTED,
        workflow_metrics.RUNS_FINISHED,
    }
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text("utf-8"))
    queried = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bstepgate_[a-z_]+", target["expr"])
    }
    assert queried and queried <= served, queried - served
    assert served <= queried, f"not charted: {served - queried}"
    mounts = _mounted(services["grafana"])
    assert "./deploy/grafana-dashboard.json" in mounts.values()
    assert any(target.startswith("/etc/grafana/provisioning/datasources/") for target in mounts)


def _version(found: re.Match[str] | None) -> str:
    assert found is not None, "scripts/ensure-temporal-server names no version"
    return found.group(1)


def test_temporal_runs_the_release_scripts_cluster_builds_from_maintained_images(
    services: dict[str, dict[str, Any]],
) -> None:
    """The server runs on `temporalio/server` and its jobs on `temporalio/admin-tools`, at the
    release scripts/ensure-temporal-server builds for scripts/cluster, the Web UI at the UI
    release it builds; no service uses the deprecated `auto-setup` image."""
    version, ui = _version(TEMPORAL_VERSION), _version(UI_VERSION)
    images = {name: str(svc.get("image", "")) for name, svc in services.items()}
    assert images["temporal"] == f"temporalio/server:{version}"
    assert (
        images["temporal-schema"]
        == images["temporal-setup"]
        == (f"temporalio/admin-tools:{version}")
    )
    assert images["temporal-ui"] == f"temporalio/ui:{ui}"
    assert [name for name, image in images.items() if "auto-setup" in image] == []


def test_temporal_server_reads_its_config_from_the_deploy_folder_scripts_cluster_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    """The server's command loads `<root>/<config>/<env>.yaml`: that folder is deploy/temporal/
    mounted, the file is there, its dynamic config file too, and every variable the service
    sets is one the file reads (a misspelt one would be ignored silently)."""
    server = services["temporal"]
    argv = server["entrypoint"]
    assert argv[0] == "temporal-server" and argv[-1] == "start", argv
    options = dict(zip(argv[1:-1:2], argv[2:-1:2], strict=True))
    folder = posixpath.normpath(posixpath.join(options["--root"], options["--config"]))
    assert _mounted(server)[folder] == "./deploy/temporal"
    config = ROOT / "deploy" / "temporal" / f"{options['--env']}.yaml"
    text = config.read_text(encoding="utf-8")
    assert text.startswith("# enable-template\n"), "the server would not render the variables"
    env = _environment(server)
    assert set(env) <= set(re.findall(r'env "([A-Z_]+)"', text)), sorted(env)
    dynamic = posixpath.relpath(env["TEMPORAL_DYNAMIC_CONFIG_FILE"], folder)
    assert not dynamic.startswith(".."), dynamic
    assert (ROOT / "deploy" / "temporal" / dynamic).is_file()
    cluster = (ROOT / "bench" / "cluster.py").read_text(encoding="utf-8")
    assert 'CONFIG_DIR = "deploy/temporal"' in cluster and '"--env", "server"' in cluster


def _runs_mounted_script(service: dict[str, Any], script: str) -> list[str]:
    """The arguments the service's entrypoint gives `script`, a file of the repository that is
    mounted into the service and run with sh."""
    argv = service["entrypoint"]
    assert argv[0] == "/bin/sh", argv
    assert _mounted(service)[argv[1]] == f"./{script}"
    assert (ROOT / script).is_file()
    return list(argv[2:])


def test_schema_job_migrates_before_the_server_and_the_namespace_job_before_the_app(
    services: dict[str, dict[str, Any]],
) -> None:
    """Temporal's databases are created and migrated by scripts/temporal-schema (as
    scripts/cluster does) once PostgreSQL is healthy and before the server starts; the namespace
    and search attributes are set up once the server is healthy; workers and the API start
    after both."""
    schema, setup = services["temporal-schema"], services["temporal-setup"]
    assert schema["restart"] == setup["restart"] == "no"
    assert _runs_mounted_script(schema, "scripts/temporal-schema") == [
        "/etc/temporal/schema/postgresql/v12"
    ]
    assert _depends_on(schema) == {"postgresql": "service_healthy"}
    assert _depends_on(services["temporal"]) == {
        "postgresql": "service_healthy",
        "temporal-schema": "service_completed_successfully",
    }
    assert _runs_mounted_script(setup, "scripts/register-search-attributes") == [
        "--create-namespace",
        "temporal:7233",
        "default",
    ]
    assert _depends_on(setup) == {"temporal": "service_healthy"}
    for name in APP_SERVICES:
        deps = _depends_on(services[name])
        assert deps["temporal"] == "service_healthy", name
        assert deps["temporal-setup"] == "service_completed_successfully", name
