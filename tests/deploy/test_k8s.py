"""deploy/k8s: valid against the Kubernetes schemas, complete as a kustomize base, and locked down as the brief requires."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from flagsync.settings import REQUIRED_SETTINGS, load_settings
from tests.deploy.settings_names import ROOT, setting_for, unknown_names

K8S = ROOT / "deploy" / "k8s"
#: The oldest Kubernetes still commonly run and the newest the package ships schemas for.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> dict[str, dict[str, Any]]:
    """kind -> the one resource of that kind in the base (the listed files)."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in documents(K8S / name):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    """Each manifest validates strictly (no unknown fields) against the Kubernetes schemas kubernetes-validate ships."""
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    """Every manifest is in the base but secret.example.yaml (it would overwrite real secrets) and the one-off migrate Job."""
    listed = set(kustomization()["resources"])
    assert listed == {p.name for p in manifests()} - {"secret.example.yaml", "migrate-job.yaml"}
    assert all((K8S / name).is_file() for name in listed)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("version", VERSIONS)
def test_the_base_renders_with_kustomize_into_valid_resources(version: str) -> None:
    """`kubectl kustomize deploy/k8s` renders, offline, to valid resources with the image set by the kustomization."""
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], check=True, capture_output=True, text=True, timeout=60).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d is not None]
    assert sorted(d["kind"] for d in docs) == sorted(resources())
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "flagsync"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    image = kustomization()["images"][0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['newName']}:{image['newTag']}"


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = resources()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod()["containers"]
    return dict(only)


def test_two_replicas_run_the_daemon() -> None:
    """Two replicas of `flagsync daemon` (one writes at a time: the state store's advisory lock), spread over nodes."""
    deployment = resources()["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert container()["args"] == ["daemon"]
    assert container()["image"] == kustomization()["images"][0]["name"]
    assert pod()["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert pod()["terminationGracePeriodSeconds"] > 10  # flagsync exits within 10 s of SIGTERM


def test_the_security_context_is_restricted() -> None:
    """Non-root, read-only root, no privilege escalation, every capability dropped, seccomp RuntimeDefault; no API token."""
    pod_context, context = pod()["securityContext"], container()["securityContext"]
    assert pod_context["runAsNonRoot"] is True and context["runAsNonRoot"] is True
    assert context["runAsUser"] == pod_context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"} == pod_context["seccompProfile"]
    assert pod()["automountServiceAccountToken"] is False
    assert resources()["ServiceAccount"]["automountServiceAccountToken"] is False
    assert not pod().get("hostNetwork") and not pod().get("hostPID")


def test_probes_and_resources() -> None:
    """Liveness and readiness ask /healthz on the metrics port, which is daemon.http_port; requests and a memory limit are set."""
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    config = resources()["ConfigMap"]["data"]
    assert ports == {"metrics": int(config["FLAGSYNC_DAEMON__HTTP_PORT"])}
    assert config["FLAGSYNC_DAEMON__HTTP_HOST"] == "0.0.0.0"  # noqa: S104 - the value checked, not a bind
    for probe in ("livenessProbe", "readinessProbe"):
        assert container()[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    limits, requests = container()["resources"]["limits"], container()["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)
    assert "memory" in limits


def test_configuration_comes_from_the_configmap_and_secret_files() -> None:
    """Settings come from the ConfigMap as environment; secrets are files in a read-only mount named by FLAGSYNC_SECRETS_DIR."""
    assert container()["envFrom"] == [{"configMapRef": {"name": resources()["ConfigMap"]["metadata"]["name"]}}]
    env = {e["name"]: e["value"] for e in container()["env"]}
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod()["volumes"]}
    assert mounts["secrets"]["mountPath"] == env["FLAGSYNC_SECRETS_DIR"]
    assert mounts["secrets"]["readOnly"] is True
    assert volumes["secrets"]["secret"]["secretName"] == documents(K8S / "secret.example.yaml")[0]["metadata"]["name"]
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory" and mounts["tmp"]["mountPath"] == "/tmp"
    config = resources()["ConfigMap"]["data"]
    assert not unknown_names(list(config))
    secret_names = list(documents(K8S / "secret.example.yaml")[0]["stringData"])
    assert not unknown_names(secret_names)
    assert not {("one", "client_secret"), ("audit", "hmac_key"), ("source", "url"), ("state", "url")} & {
        setting_for(n) for n in config
    }, "a secret in the ConfigMap"
    assert set(REQUIRED_SETTINGS) <= {setting_for(n) for n in [*config, *secret_names]}


def test_the_configmap_and_example_secret_load_as_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap as environment plus the example Secret as files in FLAGSYNC_SECRETS_DIR is a valid configuration."""
    for name, value in documents(K8S / "secret.example.yaml")[0]["stringData"].items():
        (tmp_path / name).write_text(value, encoding="utf-8")
    env = {**resources()["ConfigMap"]["data"], "FLAGSYNC_SECRETS_DIR": str(tmp_path)}
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env=env)
    assert settings.state.url.get_secret_value().startswith("postgresql+psycopg://")
    assert settings.one.base_url == "https://one.example.invalid"


def selector_matches(selector: dict[str, Any]) -> bool:
    labels = resources()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    return bool(selector["matchLabels"]) and all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_the_network_policy_admits_only_metrics_in_and_one_databases_dns_out() -> None:
    """Ingress only to TCP 9108; egress only to DNS (53), One (443) and PostgreSQL (5432); both directions enforced."""
    policy = resources()["NetworkPolicy"]["spec"]
    assert selector_matches(policy["podSelector"])
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": int(resources()["ConfigMap"]["data"]["FLAGSYNC_DAEMON__HTTP_PORT"])}]
    egress_ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("TCP", 5432), ("UDP", 53)]
    assert all(rule.get("to") for rule in policy["egress"]), "an egress rule without destinations allows everywhere"


def test_the_disruption_budget_and_service_select_the_daemon() -> None:
    """The PodDisruptionBudget keeps one replica through a drain; the Service exposes only the metrics port."""
    budget = resources()["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] == 1 and selector_matches(budget["selector"])
    service = resources()["Service"]["spec"]
    labels = resources()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["selector"].items())
    assert [p["targetPort"] for p in service["ports"]] == ["metrics"]


def test_the_migrate_job_runs_migrate_once_like_the_daemon_runs() -> None:
    """The migrate Job runs `flagsync migrate` once (no retry), with the daemon's configuration, secrets and restrictions."""
    [job] = documents(K8S / "migrate-job.yaml")
    [deployment] = documents(K8S / "deployment.yaml")
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["backoffLimit"] == 0
    pod, daemon_pod = spec["template"]["spec"], deployment["spec"]["template"]["spec"]
    [container], [daemon] = pod["containers"], daemon_pod["containers"]
    assert container["args"] == ["migrate"]
    assert pod["restartPolicy"] == "Never"
    for key in ("securityContext", "envFrom", "env", "volumeMounts"):
        assert container[key] == daemon[key], key
    assert pod["securityContext"] == daemon_pod["securityContext"]
    assert pod["volumes"] == daemon_pod["volumes"]
