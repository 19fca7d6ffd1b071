"""The Kubernetes manifests, checked without a cluster (issue 19, items 2 and 4).

What an operator applies is an overlay (`kubectl apply -k deploy/k8s/overlays/prod`), so
each overlay is rendered with `kubectl kustomize` (the machine's kubectl carries kustomize)
and every check runs on what it renders. Without kubectl, the base's files are checked as
they are and the rendering tests skip with a sentence. Every resource is validated against
the Kubernetes schemas that `kubernetes-validate` ships, and KafkaTopics against Strimzi's CRD schema
(vendored in `deploy/schemas/`). Then what a schema cannot say: the pods pass
Pod Security "restricted", probes have timeouts and the long-running
containers a startupProbe, every namespaced resource names its namespace, the
Strimzi names agree (cluster label, bootstrap Service, the Topic Operator's
namespace), no Secret is applied from the repository, the image tag is the
package's version, and every CALLVAULT_* name is a setting callvault reads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from callvault.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.30.0"
STRIMZI = json.loads((ROOT / "deploy" / "schemas" / "strimzi-kafkatopic-v1beta2.schema.json").read_text())
CLUSTER_SCOPED = {"Namespace"}
KUBECTL = shutil.which("kubectl")
OVERLAYS = ("overlays/prod", "overlays/dev")
LAYOUTS = (*OVERLAYS, "audit")  # `audit`: the auditor's Indexed Job, applied on demand
NO_KUBECTL = (
    "no kubectl on this machine: the overlays cannot be rendered, the base's files are checked as they are"
)


def _render(layout: str) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / layout)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {layout}: {done.stderr.strip()}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _documents() -> list[tuple[str, dict[str, Any]]]:
    """What each overlay renders, or the base's files where kubectl is missing."""
    if KUBECTL:
        return [(layout, doc) for layout in LAYOUTS for doc in _render(layout)]
    found = []
    for path in sorted([*(K8S / "base").glob("*.yaml"), *(K8S / "audit").glob("*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found.append((str(path.relative_to(ROOT)), doc))
    return found


DOCS = _documents()
IDS = [f"{path}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in DOCS]


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for (_path, doc), ident in zip(DOCS, IDS, strict=True):
        if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            specs.append((ident, doc["spec"]["template"]["spec"]))
    return specs


@pytest.mark.parametrize(("path", "doc"), DOCS, ids=IDS)
def test_every_resource_is_valid_against_its_schema(path: str, doc: dict[str, Any]) -> None:
    if doc["kind"] == "KafkaTopic":
        jsonschema.validate(doc, STRIMZI)
    elif doc["kind"] == "KafkaUser":  # no Strimzi KafkaUser schema here: its shape is checked below
        assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2" and set(doc["spec"]) == {
            "authentication",
            "authorization",
        }
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(("path", "doc"), DOCS, ids=IDS)
def test_every_namespaced_resource_names_its_namespace(path: str, doc: dict[str, Any]) -> None:
    if doc["kind"] not in CLUSTER_SCOPED:
        assert doc["metadata"].get("namespace"), f"{path}: {doc['kind']} lands wherever kubectl points"


@pytest.mark.parametrize(("ident", "pod"), _pod_specs(), ids=[i for i, _ in _pod_specs()])
def test_pods_pass_pod_security_restricted(ident: str, pod: dict[str, Any]) -> None:
    context = pod.get("securityContext", {})
    assert context.get("runAsNonRoot") is True, "runAsNonRoot"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert not [v for v in pod.get("volumes", []) if "hostPath" in v], "hostPath volumes"
    for container in pod["containers"] + pod.get("initContainers", []):
        own = container.get("securityContext", {})
        seccomp = own.get("seccompProfile", context.get("seccompProfile", {})).get("type")
        assert seccomp in {"RuntimeDefault", "Localhost"}, f"{container['name']}: seccompProfile"
        assert own.get("allowPrivilegeEscalation") is False, f"{container['name']}: allowPrivilegeEscalation"
        assert own.get("capabilities", {}).get("drop") == ["ALL"], f"{container['name']}: capabilities.drop"
        assert not own.get("privileged"), f"{container['name']}: privileged"
        assert own.get("readOnlyRootFilesystem") is True, f"{container['name']}: readOnlyRootFilesystem"
        assert "resources" in container and container["resources"].get("requests"), (
            f"{container['name']}: resources"
        )


@pytest.mark.parametrize(("ident", "pod"), _pod_specs(), ids=[i for i, _ in _pod_specs()])
def test_probes_wait_long_enough_and_long_running_pods_have_a_startup_probe(
    ident: str, pod: dict[str, Any]
) -> None:
    for container in pod["containers"]:
        probes = {k: v for k, v in container.items() if k.endswith("Probe")}
        for name, probe in probes.items():
            # The worker's /readyz may wait 3 s for S3; the API's makes two HEADs through a retrying runner.
            assert probe.get("timeoutSeconds", 1) >= 5, f"{container['name']}: {name} times out in 1 s"
        if pod.get("restartPolicy", "Always") == "Always":
            assert "startupProbe" in probes, f"{container['name']}: no startupProbe"


def test_the_storage_init_job_can_run_again_each_release() -> None:
    for _, job in [(p, doc) for p, doc in DOCS if doc["kind"] == "Job"]:
        _check_init_job(job)


def _check_init_job(job: dict[str, Any]) -> None:
    assert job["spec"].get("ttlSecondsAfterFinished"), (
        "a finished Job stays, and its pod template is immutable"
    )
    version = _package_version().replace(".", "-")
    assert job["metadata"]["name"].endswith(version), "a Job named for the release: a new one each release"


def test_no_secret_is_applied_from_the_repository() -> None:
    assert not [doc for _, doc in DOCS if doc["kind"] == "Secret"], (
        "placeholders would overwrite the real one"
    )


@pytest.mark.parametrize("layout", sorted({p for p, _ in DOCS}))
def test_the_strimzi_names_agree(layout: str) -> None:
    mine = [doc for p, doc in DOCS if p == layout or not KUBECTL]
    topics = [doc for doc in mine if doc["kind"] == "KafkaTopic"]
    if not topics:
        pytest.skip(f"{layout} declares no topics (the auditor's replay Job)")
    clusters = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics}
    namespaces = {t["metadata"]["namespace"] for t in topics}
    assert len(clusters) == 1 and len(namespaces) == 1
    (config,) = [doc for doc in mine if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "callvault"]
    host = config["data"]["CALLVAULT_KAFKA_BOOTSTRAP"].split(":")[0]
    assert host.startswith(f"{clusters.pop()}-kafka-bootstrap.{namespaces.pop()}"), host
    prefix = config["data"]["CALLVAULT_TOPIC_PREFIX"]
    partitions = int(config["data"]["CALLVAULT_PARTITIONS"])
    declared = {t["spec"].get("topicName") or t["metadata"]["name"] for t in topics}
    settings = Settings(topic_prefix=prefix)
    assert set(settings.all_topics()) <= declared
    assert all(
        t["spec"]["partitions"] == partitions
        for t in topics
        if not (t["spec"].get("topicName") or t["metadata"]["name"]).endswith("__leader")
    )
    assert all(t["spec"]["replicas"] == int(config["data"]["CALLVAULT_REPLICATION_FACTOR"]) for t in topics)


# A Kubernetes object's name: a DNS subdomain (RFC 1123), lowercase, at most 253 characters.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_every_resource_name_is_one_the_api_server_accepts() -> None:
    """On main the leader topic's KafkaTopic was `callvault-worker-__assignor-__leader`: refused."""
    bad = sorted(
        f"{d['kind']} {d['metadata']['name']}"
        for _, d in DOCS
        if len(d["metadata"]["name"]) > 253 or not DNS_SUBDOMAIN.fullmatch(d["metadata"]["name"])
    )
    assert bad == [], f"names the API server refuses: {bad}"


def _package_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_images_are_the_packages_version() -> None:
    images = {c["image"] for _, pod in _pod_specs() for c in pod["containers"]}
    assert images == {f"ghcr.io/your-org/callvault:{_package_version()}"}, images


def test_every_callvault_variable_in_the_deploy_files_is_a_setting() -> None:
    known = {f"CALLVAULT_{name.upper()}" for name in Settings.model_fields}
    known |= {"CALLVAULT_RETURN_ENDPOINT", "CALLVAULT_RETURN_ACCESS_KEY", "CALLVAULT_RETURN_SECRET_KEY",
              "CALLVAULT_RETURN_REGION"}  # fmt: skip
    files = [*K8S.rglob("*.yaml"), ROOT / "docker-compose.yml", ROOT / "docs" / "operators.md"]
    used = {name for f in files if f.exists() for name in re.findall(r"CALLVAULT_[A-Z0-9_]+", f.read_text())}
    assert used - known == set(), f"not settings callvault reads: {sorted(used - known)}"


@pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)
def test_each_overlay_renders_the_whole_set_and_keeps_the_topics_with_strimzi() -> None:
    base = {(d["kind"], d["metadata"]["name"]) for d in _render("base")}
    for layout in OVERLAYS:
        rendered = _render(layout)
        assert base <= {(d["kind"], d["metadata"]["name"]) for d in rendered}, layout
        # An overlay's `namespace:` would move the KafkaTopics and KafkaUsers away from Strimzi's operators.
        strimzi = {"KafkaTopic", "KafkaUser"}
        assert {d["metadata"]["namespace"] for d in rendered if d["kind"] in strimzi} == {"kafka"}
        assert {d["metadata"].get("namespace") for d in rendered if d["kind"] not in strimzi} <= {
            "callvault",
            None,
        }


@pytest.mark.skipif(KUBECTL is None, reason=NO_KUBECTL)
def test_the_dev_overlay_asks_one_replica_of_everything_and_prod_three() -> None:
    prod = {(d["kind"], d["metadata"]["name"]): d for d in _render("overlays/prod")}
    dev = {(d["kind"], d["metadata"]["name"]): d for d in _render("overlays/dev")}
    assert prod["ConfigMap", "callvault"]["data"]["CALLVAULT_REPLICATION_FACTOR"] == "3"
    assert dev["ConfigMap", "callvault"]["data"]["CALLVAULT_REPLICATION_FACTOR"] == "1"
    assert {d["spec"]["replicas"] for k, d in dev.items() if k[0] in {"KafkaTopic", "Deployment"}} == {1}
    assert ("PodDisruptionBudget", "callvault-worker") in prod


def test_the_kustomizations_tag_the_image_with_the_packages_version() -> None:
    for path in sorted(K8S.rglob("kustomization.yaml")):
        for image in yaml.safe_load(path.read_text()).get("images", []):
            assert image["newTag"] == _package_version(), path


def test_the_audit_replay_is_an_indexed_job_of_one_pod_per_partition() -> None:
    (job,) = [doc for path, doc in DOCS if doc["kind"] == "Job" and "replay" in doc["metadata"]["name"]]
    config = next(
        doc for _, doc in DOCS if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "callvault"
    )
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == int(config["data"]["CALLVAULT_PARTITIONS"])
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["audit", "replay"] and "--partial-out" in args and "$(PARTITION)" in args
    env = {e["name"]: e for e in container["env"]}
    assert "job-completion-index" in env["PARTITION"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_each_components_kafka_user_has_exactly_the_acls_of_the_registry() -> None:
    """Issue 26, item 3: one KafkaUser per component, granted what rules/kafka_acls.py says and no more."""
    from callvault.rules.kafka_acls import COMPONENTS, acls

    users = {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == "KafkaUser"}
    assert set(users) == {f"callvault-{c}" for c in COMPONENTS}, sorted(users)
    (prefix,) = {
        d["data"]["CALLVAULT_TOPIC_PREFIX"]
        for _, d in DOCS
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "callvault"
    }
    topics = Settings(topic_prefix=prefix).kafka_topics()
    for component in COMPONENTS:
        spec = users[f"callvault-{component}"]["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512" and spec["authorization"]["type"] == "simple"
        found = {
            (r["type"], r["name"], r["patternType"], tuple(a["operations"]))
            for a in spec["authorization"]["acls"]
            for r in [a["resource"]]
        }
        wanted = {
            (a.resource, a.name, "prefix" if a.prefixed else "literal", a.operations)
            for a in acls(component, topics)
        }
        assert found == wanted, component


# Which Kafka user each pod connects as (issue 26, item 5); None: the pod never speaks to Kafka.
KAFKA_USER_OF_POD = {
    "callvault-worker": "callvault-worker",
    "callvault-api": "callvault-api",
    "callvault-audit-replay": "callvault-auditor",
    "callvault-storage-init": None,
}


def _pods() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(ident, the pod's app name, its template, the ConfigMap it reads) of every rendered pod."""
    configs = {d["metadata"]["name"]: d["data"] for _, d in DOCS if d["kind"] == "ConfigMap"}
    pods = []
    for (_path, doc), ident in zip(DOCS, IDS, strict=True):
        if doc["kind"] in {"Deployment", "Job"}:
            template = doc["spec"]["template"]
            name = template["metadata"]["labels"]["app.kubernetes.io/name"]
            pods.append((ident, name, template, configs["callvault"]))
    return pods


@pytest.mark.parametrize(("ident", "name", "template", "config"), _pods(), ids=[p[0] for p in _pods()])
def test_each_pod_speaks_to_kafka_over_tls_as_its_own_user_with_the_cluster_ca(
    ident: str, name: str, template: dict[str, Any], config: dict[str, str]
) -> None:
    """Issue 26, item 5: on main the base pointed at Strimzi's plain listener, and no pod mounted a
    KafkaUser's Secret or the cluster CA."""
    assert config["CALLVAULT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert (
        config["CALLVAULT_KAFKA_BOOTSTRAP"].endswith(":9093")
        and "CALLVAULT_KAFKA_ALLOW_PLAINTEXT_REASON" not in config
    )
    (container,) = template["spec"]["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    user = KAFKA_USER_OF_POD[name]
    if user is None:
        assert "CALLVAULT_KAFKA_SASL_USERNAME" not in env
        assert env["CALLVAULT_KAFKA_SECURITY_PROTOCOL"]["value"] == "SSL", (
            "no user, and never a plain listener"
        )
        return
    assert env["CALLVAULT_KAFKA_SASL_USERNAME"]["value"] == user
    assert env["CALLVAULT_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": user,
        "key": "password",
    }
    ca_file = Path(config["CALLVAULT_KAFKA_CA_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca_file.parent)]
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "kafka-cluster-ca-cert"
    assert {"key": "ca.crt", "path": ca_file.name} in volume["secret"]["items"]
    users = {d["metadata"]["name"] for _, d in DOCS if d["kind"] == "KafkaUser"}
    assert user in users or not users, f"{user} is not a KafkaUser of the rendered set"


def test_every_pod_has_a_network_policy_and_the_namespace_denies_the_rest() -> None:
    policies = [d for _, d in DOCS if d["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               for p in policies), "a default deny for the namespace"  # fmt: skip
    selected = {
        p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name"): p for p in policies
    }
    for ident, name, _template, _config in _pods():
        policy = selected.get(name)
        assert policy is not None, f"{ident}: no NetworkPolicy selects its pods"
        kafka = [rule for rule in policy["spec"].get("egress", []) if _reaches_namespace(rule, "kafka")]
        if KAFKA_USER_OF_POD[name] is None:
            assert kafka == [], f"{ident} never speaks to Kafka, so may not reach it"
        else:
            assert [p["port"] for rule in kafka for p in rule["ports"]] == [9093], ident


def _reaches_namespace(rule: dict[str, Any], namespace: str) -> bool:
    selectors = (t.get("namespaceSelector", {}).get("matchLabels", {}) for t in rule.get("to", []))
    return any(labels.get("kubernetes.io/metadata.name") == namespace for labels in selectors)
