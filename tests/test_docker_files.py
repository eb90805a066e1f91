"""docker/: the settings the container deployments rely on, read from the files themselves.

Nothing is built or run here (no Docker engine in CI); the path the containers use,
attaching by service name to a Chromium behind a TCP forwarder, is tested in
tests/faults/test_container.py and tests/cdp/test_connect.py (tests/container.py).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from crawler import config as config_mod
from tests.container import SERVICE_NAME, SERVICE_PORT, SERVICE_URL, compose_crawler_args

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
HEARTBEAT = config_mod.load(ROOT / "config" / "musinsa.toml").monitor.heartbeat_file


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict[str, Any]:
    (doc,) = load_yaml(DOCKER / "docker-compose.yml")
    return doc


def k8s(name: str) -> dict[str, dict[str, Any]]:
    """kind -> document of one manifest file."""
    return {doc["kind"]: doc for doc in load_yaml(DOCKER / "k8s" / name)}


def checks_heartbeat(command: list[str] | str) -> bool:
    """The probe command tests the heartbeat file's age (find -mmin, non-empty output)."""
    text = command if isinstance(command, str) else " ".join(command)
    return HEARTBEAT in text and "-mmin" in text and "test -n" in text


def test_musinsa_config_names_the_heartbeat_file_the_probes_read():
    assert HEARTBEAT == "/tmp/crawler-heartbeat"


# -- Dockerfile ------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_slim_python_base_non_root_init_and_the_project_installed():
    steps = dockerfile()
    instructions = [word for word, _ in steps]
    (base,) = [args for word, args in steps if word == "FROM"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert instructions.index("USER") > max(
        i for i, w in enumerate(instructions) if w == "RUN"
    )  # nothing runs as root after
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "tini" in runs and "pip install ." in runs
    copied = {args.split()[0] for word, args in steps if word == "COPY"}
    assert {"pyproject.toml", "cdp", "crawler"} <= copied
    (entrypoint,) = [args for word, args in steps if word == "ENTRYPOINT"]
    assert "tini" in entrypoint
    (cmd,) = [args for word, args in steps if word == "CMD"]
    assert cmd == '["python", "-m", "crawler"]'


def test_dockerignore_sends_only_what_the_image_copies():
    lines = [ln for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if ln and ln[0] != "#"]
    assert lines[0] == "*" and {"!cdp/", "!crawler/", "!pyproject.toml", "!README.md"} <= set(lines)


# -- docker-compose.yml ------------------------------------------------------------------


def test_compose_chromium_has_shm_and_devtools_on_the_compose_network_only():
    chromium = compose()["services"]["chromium"]
    assert chromium["image"].startswith("chromedp/headless-shell")
    assert chromium["shm_size"] == "2gb"
    assert "ports" not in chromium  # 9222 is never published on the host
    assert [str(p) for p in chromium["expose"]] == ["9222"]
    assert chromium["init"] is True and chromium["restart"] == "unless-stopped"
    assert chromium["mem_limit"]


def test_no_compose_service_publishes_a_port():
    for path in DOCKER.glob("docker-compose*.yml"):
        (doc,) = load_yaml(path)
        published = {name: svc["ports"] for name, svc in doc["services"].items() if "ports" in svc}
        assert published == {}, f"{path.name}: {published}"


def test_compose_crawler_command_limits_restart_init_and_heartbeat_healthcheck():
    crawler = compose()["services"]["crawler"]
    assert crawler["command"] == [
        "python",
        "-m",
        "crawler",
        "--config",
        "/config/musinsa.toml",
        "--cdp-url",
        "http://chromium:9222",
    ]
    assert crawler["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert crawler["init"] is True
    assert crawler["restart"] == "unless-stopped"
    assert crawler["mem_limit"] == "1g"
    assert "chromium" in crawler["depends_on"]
    assert "../config:/config:ro" in crawler["volumes"]
    assert any(v.split(":")[1] == "/data" for v in crawler["volumes"])  # the db's folder (WORKDIR)
    check = crawler["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and checks_heartbeat(check["test"][1])
    assert "-mmin -2" in check["test"][1]  # stale after 2 minutes; the beat is every 5 s
    assert {"interval", "retries", "start_period"} <= set(check)


def test_compose_cdp_url_is_the_path_the_container_tests_take():
    """The crawler's --cdp-url in docker-compose.yml is the endpoint tests/faults/test_container.py
    crawls by (tests/container.py: the service name, port 9222, a TCP forwarder in front
    of a Chromium bound to its own 127.0.0.1), and those tests run the Compose command
    itself (compose_crawler_args); the chromium service is the image that topology is of."""
    crawler = compose()["services"]["crawler"]
    assert crawler["command"][crawler["command"].index("--cdp-url") + 1] == SERVICE_URL
    assert compose_crawler_args(Path("/x.toml")) == ["--config", "/x.toml", "--cdp-url", SERVICE_URL]
    assert SERVICE_URL == f"http://{SERVICE_NAME}:{SERVICE_PORT}" and SERVICE_NAME in compose()["services"]
    assert [str(p) for p in compose()["services"][SERVICE_NAME]["expose"]] == [str(SERVICE_PORT)]


def test_compose_redis_override_switches_the_crawler_to_the_shared_frontier():
    (doc,) = load_yaml(DOCKER / "docker-compose.redis.yml")
    redis, crawler = doc["services"]["redis"], doc["services"]["crawler"]
    assert "ports" not in redis and [str(p) for p in redis["expose"]] == ["6379"]
    assert "--appendonly" in redis["command"]
    assert crawler["command"][crawler["command"].index("--config") + 1] == "/config/musinsa-redis.toml"
    assert "./musinsa-redis.toml:/config/musinsa-redis.toml:ro" in crawler["volumes"]


def test_redis_config_is_musinsa_with_a_redis_store():
    """docker/musinsa-redis.toml must not drift from config/musinsa.toml."""
    shared = tomllib.loads((DOCKER / "musinsa-redis.toml").read_text())
    original = tomllib.loads((ROOT / "config" / "musinsa.toml").read_text())
    store = shared.pop("store")
    assert shared == original
    assert store["backend"] == "redis" and store["url"] == "redis://redis:6379/0"
    cfg = config_mod.from_dict({**shared, "store": store}, source="musinsa-redis.toml", base_dir=str(ROOT / "config"))
    assert cfg.store.lease_s == 60 and cfg.store.crawl == "musinsa"


# -- Kubernetes --------------------------------------------------------------------------


def pod_of(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod.get("initContainers", []) + pod["containers"]}


@pytest.mark.parametrize(
    ("manifest", "kind", "config"),
    [
        ("crawler-deployment.yaml", "Deployment", "/config/musinsa.toml"),
        ("crawler-redis-job.yaml", "Job", "/config/musinsa-redis.toml"),
    ],
)
def test_k8s_pod_has_crawler_and_chromium_sidecar_with_memory_shm_limits_and_liveness(manifest, kind, config):
    docs = k8s(manifest)
    pod = pod_of(docs[kind])
    by_name = containers(pod)
    chromium, crawler = by_name["chromium"], by_name["crawler"]

    # The sidecar: a native one (init container that keeps running), ready on 9222 first.
    assert chromium in pod["initContainers"] and chromium["restartPolicy"] == "Always"
    assert chromium["image"].startswith("chromedp/headless-shell")
    assert chromium["startupProbe"]["tcpSocket"]["port"] == 9222
    assert "ports" not in chromium

    # /dev/shm: memory-backed emptyDir, mounted in Chromium.
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = [m for m in chromium["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert len(shm) == 1
    assert volumes[shm[0]["name"]]["emptyDir"]["medium"] == "Memory"
    assert volumes[shm[0]["name"]]["emptyDir"]["sizeLimit"] == "2Gi"

    # Resource limits on both; the crawler as a non-root user.
    for container in (chromium, crawler):
        assert container["resources"]["limits"]["memory"], container["name"]
    assert _gib(chromium["resources"]["limits"]["memory"]) > _gib(volumes[shm[0]["name"]]["emptyDir"]["sizeLimit"])
    assert crawler["securityContext"]["runAsNonRoot"] is True and crawler["securityContext"]["runAsUser"] != 0

    # The crawler attaches to the sidecar inside the pod and is probed on its heartbeat.
    args = crawler["args"]
    assert args[:3] == ["python", "-m", "crawler"]
    assert args[args.index("--config") + 1] == config
    assert args[args.index("--cdp-url") + 1] == "http://127.0.0.1:9222"
    probe = crawler["livenessProbe"]
    assert checks_heartbeat(probe["exec"]["command"])
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 60  # a slow page is not a dead crawler
    assert probe["initialDelaySeconds"] >= 30

    # Nothing may connect in (DevTools on the pod IP would give away the browser).
    policy = docs["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == docs[kind]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"] == []
    assert "Service" not in docs


def test_k8s_sqlite_deployment_is_one_replica_recreated_on_a_volume():
    docs = k8s("crawler-deployment.yaml")
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    claim = [v for v in pod_of(deployment)["volumes"] if "persistentVolumeClaim" in v]
    assert claim and claim[0]["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]


def test_k8s_redis_variant_runs_several_workers_against_the_redis_service():
    job = k8s("crawler-redis-job.yaml")["Job"]
    assert job["spec"]["parallelism"] >= 2
    assert pod_of(job)["restartPolicy"] == "OnFailure"
    redis = k8s("redis.yaml")
    service = redis["Service"]
    assert service["metadata"]["name"] == "redis" and service["spec"]["ports"][0]["port"] == 6379
    assert "--appendonly" in containers(pod_of(redis["Deployment"]))["redis"]["args"]
    url = tomllib.loads((DOCKER / "musinsa-redis.toml").read_text())["store"]["url"]
    assert url == f"redis://{service['metadata']['name']}:6379/0"


def test_readme_commands_name_files_that_exist():
    text = (DOCKER / "README.md").read_text().replace("\\\n", " ")
    for command in re.findall(r"^(?:docker|kubectl) .*$", text, flags=re.M):
        for word in shlex.split(command):
            if word.startswith(("docker/", "config/")) and "=" not in word:
                assert (ROOT / word).exists(), f"{command}: {word}"
            if "--from-file=" in word:
                assert (ROOT / word.split("=", 1)[1]).exists(), word


def _gib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()
    return float(number) / (1024 if unit == "Mi" else 1)


def redis_flags(argv: list[str]) -> dict[str, str]:
    """``--name value`` pairs of a redis-server command line."""
    return {a.removeprefix("--"): b for a, b in zip(argv, argv[1:], strict=False) if a.startswith("--")}


def test_the_deployed_redis_keeps_every_acknowledged_write_across_a_restart():
    """Compose and Kubernetes run Redis with AOF and ``appendfsync always`` on a volume
    that outlives the container, so a restart (which the workers wait out, up to
    ``[store] outage_s``) loses nothing; the crawl is named, as workers on several
    machines need, and waits out an outage."""
    (doc,) = load_yaml(DOCKER / "docker-compose.redis.yml")
    redis = doc["services"]["redis"]
    assert redis_flags(redis["command"]) == {"appendonly": "yes", "appendfsync": "always"}
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in doc["volumes"]
    assert redis["restart"] == "unless-stopped"
    k8s_args = containers(pod_of(k8s("redis.yaml")["Deployment"]))["redis"]["args"]
    assert redis_flags(k8s_args) == {"appendonly": "yes", "appendfsync": "always"}
    store = tomllib.loads((DOCKER / "musinsa-redis.toml").read_text())["store"]
    assert store["crawl"] == "musinsa" and store["outage_s"] >= 30
