"""The Helm chart charts/vpipe, rendered by a real Helm binary.

Aspects tested:
- `helm lint --strict` and `helm template` for several value combinations (defaults; gateway
  + HPA + ServiceMonitor; cert-manager; peering over listed namespaces; no webhook; sidecar
  PodMonitor + Grafana dashboard), at the oldest supported Kubernetes version too;
- every rendered manifest is valid for the Kubernetes OpenAPI schemas (`kubernetes-validate`,
  strict: unknown fields fail), and the custom kinds (cert-manager, Prometheus Operator, kopf
  peering) carry their essentials;
- the CRDs are the repository's crds/, unchanged but for Helm's labels and the keep policy;
- the ClusterRole has exactly the rules of operator/rbac/clusterrole.yaml;
- the webhook: self-signed TLS whose caBundle verifies the serving certificate for the Service
  name; cert-manager wiring; selectors that exclude the release namespace;
- the env the chart sets is read without error by the webhook's and the operator's settings;
- every container runs as the restricted Pod Security profile wants;
- values.schema.json rejects bad values; values.yaml documents every key; docs/install.md holds
  the generated values table; NOTES.txt tells the next command.
"""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import helm, valuesdoc
from tests.chart.helm import CHART, NAMESPACE, ROOT, find, kinds, template, template_error

FULL = "vpipe"  # release "vpipe" contains the chart name: resources are "vpipe-..."
GATEWAY = {"gateway": {"enabled": True, "secrets": ["deepseek", "team.glm"],
                       "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5}},
           "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}
CERT_MANAGER = {"certManager": {"enabled": True}}
PEERING = {"operator": {"replicas": 2, "namespaces": ["team-a", "team-b"]}}
NO_WEBHOOK = {"webhook": {"enabled": False}, "crds": {"install": False}}
MONITORING = {"podMonitor": {"enabled": True}, "grafanaDashboard": {"enabled": True}}
COMBINATIONS: dict[str, dict[str, Any]] = {"defaults": {}, "gateway": GATEWAY, "cert-manager": CERT_MANAGER,
                "peering": PEERING, "no-webhook": NO_WEBHOOK, "monitoring": MONITORING}
CUSTOM_KINDS = {"Certificate", "Issuer", "ServiceMonitor", "PodMonitor", "ClusterKopfPeering",
                "KopfPeering"}
KUBE_VERSIONS = ("1.27.0", "1.37.0")  # Chart.yaml's kubeVersion floor, and the newest schemas


@pytest.fixture(scope="module", autouse=True)
def _helm() -> None:
    helm.binary()  # skip the module, with the reason, when no Helm can be had


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for d in docs if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]]


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# --- lint and render ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMBINATIONS)
def test_lint_strict(name: str) -> None:
    out = helm.run("lint", str(CHART), "--strict", "--namespace", NAMESPACE,
                   values=COMBINATIONS[name]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_default_render() -> None:
    assert kinds(template()) == [
        "ClusterRole/vpipe-operator", "ClusterRoleBinding/vpipe-operator",
        "CustomResourceDefinition/pipelines.vpipe.io", "CustomResourceDefinition/routes.vpipe.io",
        "Deployment/vpipe-operator", "MutatingWebhookConfiguration/vpipe-injection",
        "Secret/vpipe-webhook-tls", "Service/vpipe-webhook", "ServiceAccount/vpipe-operator"]


@pytest.mark.parametrize("name", COMBINATIONS)
def test_manifests_are_valid_kubernetes_objects(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="bundles the Kubernetes schemas")
    for version in KUBE_VERSIONS:
        for doc in template(COMBINATIONS[name], include_crds=True, kube_version=version):
            where = f"{doc['kind']}/{doc['metadata']['name']} on Kubernetes {version}"
            if doc["kind"] in CUSTOM_KINDS:
                assert doc["apiVersion"].count("/") == 1 and doc["metadata"]["name"], where
                continue
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{where}: {str(e).splitlines()[0]}")


def test_namespaced_objects_are_in_the_release_namespace() -> None:
    for doc in template(GATEWAY | CERT_MANAGER | MONITORING):
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                               "MutatingWebhookConfiguration"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


# --- CRDs and RBAC -----------------------------------------------------------------------------

def test_chart_crd_files_are_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert copied == generated, ("charts/vpipe/files/crds differs from crds/: "
                                 "run `cp crds/*.yaml charts/vpipe/files/crds/`")


def test_rendered_crds_are_the_generated_crds() -> None:
    rendered = {d["metadata"]["name"]: d for d in template()
                if d["kind"] == "CustomResourceDefinition"}
    for path in (ROOT / "crds").glob("*.yaml"):
        expected = yaml.safe_load(path.read_text())
        crd = copy.deepcopy(rendered[expected["metadata"]["name"]])
        assert crd["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        labels = crd["metadata"].pop("labels")
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert crd == expected, f"{path.name} changed on its way through the chart"


def test_crds_can_be_left_out_or_deletable() -> None:
    assert not [d for d in template({"crds": {"install": False}})
                if d["kind"] == "CustomResourceDefinition"]
    for crd in (d for d in template({"crds": {"keep": False}})
                if d["kind"] == "CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


def test_kopf_peering_crds_ship_in_the_crds_folder() -> None:
    names = {d["metadata"]["name"] for d in template(include_crds=True)
             if d["kind"] == "CustomResourceDefinition"}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= names


def operator_rbac_rules() -> list[dict[str, Any]]:
    text = (ROOT / "operator" / "rbac" / "clusterrole.yaml").read_text()
    rules: list[dict[str, Any]] = yaml.safe_load(text)["rules"]
    return rules


def test_cluster_role_has_the_operator_rules() -> None:
    def narrowed(kind: str) -> list[dict[str, Any]]:
        return [{**r, "resources": [kind]} if r["apiGroups"] == ["kopf.dev"] else r
                for r in operator_rbac_rules()]

    # Only the peering kind the release uses: per namespace with operator.namespaces.
    assert find(template(PEERING), "ClusterRole")["rules"] == narrowed("kopfpeerings")
    clusterwide = {"operator": {"replicas": 2}}
    assert find(template(clusterwide), "ClusterRole")["rules"] == narrowed("clusterkopfpeerings")
    standalone = find(template(), "ClusterRole")["rules"]
    assert standalone == [r for r in operator_rbac_rules() if r["apiGroups"] != ["kopf.dev"]]
    assert {"apiGroups": [""], "resources": ["configmaps"],
            "verbs": ["get", "list", "watch", "create", "patch", "delete"]} in standalone
    binding = find(template(), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vpipe-operator",
                                    "namespace": NAMESPACE}]


# --- webhook -----------------------------------------------------------------------------------

def test_self_signed_ca_bundle_verifies_the_serving_certificate() -> None:
    pytest.importorskip("cryptography", reason="inspects the generated certificates")
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    docs = template()
    secret = find(docs, "Secret", "vpipe-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    config = find(docs, "MutatingWebhookConfiguration")
    for webhook in config["webhooks"]:
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == data["ca.crt"]
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    service = f"vpipe-webhook.{NAMESPACE}.svc"
    assert service in names.get_values_for_type(x509.DNSName)
    assert cert.issuer == ca.subject
    key = ca.public_key()
    assert cert.signature_hash_algorithm is not None
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                   cert.signature_hash_algorithm)
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(cert.signature, cert.tbs_certificate_bytes,
                   ec.ECDSA(cert.signature_hash_algorithm))


def test_cert_manager_issues_and_injects_the_ca() -> None:
    docs = template(CERT_MANAGER)
    assert not [d for d in docs if d["kind"] == "Secret"]
    certificate = find(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "vpipe-webhook-tls"
    assert f"vpipe-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "vpipe-selfsigned", "kind": "Issuer",
                                                "group": "cert-manager.io"}
    assert find(docs, "Issuer")["spec"] == {"selfSigned": {}}
    config = find(docs, "MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/vpipe-webhook"}
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    own = template({"certManager": {"enabled": True,
                                    "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}})
    assert not [d for d in own if d["kind"] == "Issuer"]
    assert find(own, "Certificate")["spec"]["issuerRef"]["name"] == "corp-ca"


def test_webhook_selection() -> None:
    config = find(template({"webhook": {"excludeNamespaces": ["monitoring"]}}),
                  "MutatingWebhookConfiguration")
    by_name = {w["name"]: w for w in config["webhooks"]}
    assert set(by_name) == {"namespace.inject.vpipe.io", "pod.inject.vpipe.io"}
    for w in by_name.values():
        assert w["failurePolicy"] == "Ignore" and w["timeoutSeconds"] == 5
        assert w["sideEffects"] == "None" and w["admissionReviewVersions"] == ["v1"]
        assert w["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["pods"], "scope": "Namespaced"}]
        excluded = w["namespaceSelector"]["matchExpressions"][0]
        assert excluded["key"] == "kubernetes.io/metadata.name"
        assert excluded["operator"] == "NotIn"
        assert excluded["values"] == [NAMESPACE, "kube-system", "monitoring"]
    ns, pod = by_name["namespace.inject.vpipe.io"], by_name["pod.inject.vpipe.io"]
    assert ns["clientConfig"]["service"]["path"] == "/inject/namespace"
    assert ns["namespaceSelector"]["matchExpressions"][1] == {
        "key": "vpipe.io/inject", "operator": "In", "values": ["enabled"]}
    assert pod["clientConfig"]["service"]["path"] == "/inject/pod"
    assert pod["objectSelector"] == {"matchLabels": {"vpipe.io/inject": "true"}}
    by_annotation = find(template({"webhook": {"podSelection": "annotation"}}),
                         "MutatingWebhookConfiguration")["webhooks"][1]
    assert by_annotation["objectSelector"] == {"matchExpressions": [
        {"key": "vpipe.io/inject", "operator": "NotIn", "values": ["false"]}]}


def test_webhook_service_reaches_the_webhook_container() -> None:
    docs = template()
    service = find(docs, "Service", "vpipe-webhook")
    pod = find(docs, "Deployment", "vpipe-operator")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    webhook = next(c for c in pod["spec"]["containers"] if c["name"] == "webhook")
    assert service["spec"]["ports"][0]["targetPort"] in [p["name"] for p in webhook["ports"]]
    assert webhook["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_no_webhook() -> None:
    docs = template(NO_WEBHOOK)
    assert kinds(docs) == ["ClusterRole/vpipe-operator", "ClusterRoleBinding/vpipe-operator",
                           "Deployment/vpipe-operator", "ServiceAccount/vpipe-operator"]
    assert [c["name"] for c in containers(docs)] == ["operator"]


# --- settings the chart passes -------------------------------------------------------------------

def test_webhook_env_is_read_by_the_webhook_settings() -> None:
    from vpipe_operator.injection.settings import WebhookSettings

    values = {"image": {"tag": "1.2.3"}, "proxy": {"port": 18080, "nativeSidecar": True,
                                                    "resources": {"limits": {"cpu": None}}},
              "webhook": {"env": {"VPIPE_WEBHOOK_LOOKUP_TIMEOUT": 1}}}
    webhook = next(c for c in containers(template(values)) if c["name"] == "webhook")
    settings = WebhookSettings.from_environ(env(webhook))
    assert settings.sidecar.image == "ghcr.io/vpipe/vpipe-proxy:1.2.3"
    assert (settings.sidecar.port, settings.sidecar.native_sidecar) == (18080, True)
    assert (settings.sidecar.cpu_limit, settings.sidecar.memory_limit) == ("", "256Mi")
    assert settings.lookup_timeout == 1.0
    assert webhook["command"] == ["python", "-m", "vpipe_operator.injection"]
    mounts = {m["mountPath"] for m in webhook["volumeMounts"]}
    assert str(Path(settings.cert_file).parent) in mounts


def test_operator_env_is_read_by_the_operator_settings() -> None:
    from vpipe_operator.settings import OperatorSettings

    operator = next(c for c in containers(template(PEERING)) if c["name"] == "operator")
    settings = OperatorSettings.from_environ(env(operator))
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.peering == "vpipe"  # docs/operator.md's name
    assert settings.liveness.endswith(":8080/healthz")
    assert operator["livenessProbe"]["httpGet"]["port"] == "health"
    standalone = next(c for c in containers(template()) if c["name"] == "operator")
    assert OperatorSettings.from_environ(env(standalone)).peering == ""
    assert OperatorSettings.from_environ(env(standalone)).sidecar_gate is True
    analysed = next(c for c in containers(template({"operator": {
        "prometheusUrl": "http://prometheus.monitoring:9090", "sidecarGate": False}}))
        if c["name"] == "operator")
    settings = OperatorSettings.from_environ(env(analysed))
    assert settings.prometheus_url == "http://prometheus.monitoring:9090"
    assert settings.sidecar_gate is False


def test_peering_objects() -> None:
    docs = template(PEERING)
    assert sorted((d["kind"], d["metadata"].get("namespace")) for d in docs
                  if d["kind"].endswith("KopfPeering")) == [
        ("KopfPeering", "team-a"), ("KopfPeering", "team-b")]
    assert find(docs, "Deployment", "vpipe-operator")["spec"]["replicas"] == 2
    clusterwide = template({"operator": {"replicas": 3}})
    assert find(clusterwide, "ClusterKopfPeering")["metadata"]["name"] == "vpipe"
    assert not [d for d in template() if d["kind"].endswith("KopfPeering")]


def test_each_peer_draws_its_own_priority() -> None:
    """kopf pauses every peer when two share a priority; the replicas of one Deployment share
    their env, so the container picks a random one unless VPIPE_OPERATOR_PRIORITY is given."""
    import os
    import subprocess
    import sys

    operator = next(c for c in containers(template(PEERING)) if c["name"] == "operator")
    assert operator["command"] == ["/bin/sh", "-c"]
    script = operator["args"][0]
    assert script.endswith("exec python -m vpipe_operator")
    probe = script.replace("exec python -m vpipe_operator", "echo $VPIPE_OPERATOR_PRIORITY")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    drawn = {subprocess.run(["/bin/sh", "-c", probe], capture_output=True, text=True, check=True,
                            env={"PATH": path}).stdout.strip() for _ in range(3)}
    assert len(drawn) == 3 and all(p.isdigit() for p in drawn)
    given = subprocess.run(["/bin/sh", "-c", probe], capture_output=True, text=True, check=True,
                           env={"PATH": path, "VPIPE_OPERATOR_PRIORITY": "7"}).stdout.strip()
    assert given == "7"
    standalone = next(c for c in containers(template()) if c["name"] == "operator")
    assert "command" not in standalone and "args" not in standalone


def test_every_container_runs_restricted() -> None:
    for container in containers(template(GATEWAY)):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["requests"], container["name"]


# --- gateway -----------------------------------------------------------------------------------

def test_gateway_with_hpa_and_service_monitor() -> None:
    docs = template(GATEWAY)
    deployment = find(docs, "Deployment", "vpipe-gateway")
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["vpipe.io/inject"] == "false"
    # The operator finds the gateway's pods by this label and asks their admin port.
    from vpipe_operator import sidecars
    assert pod["metadata"]["labels"][sidecars.LABEL] == "gateway"
    running = {**pod, "metadata": {**pod["metadata"], "name": "gw-1"},
               "status": {"phase": "Running", "podIP": "10.0.0.9"}}
    assert sidecars.targets([running]) == [sidecars.Target("gw-1", "http://10.0.0.9:9090")]
    proxy = pod["spec"]["containers"][0]
    assert proxy["args"] == ["serve", "--config-dir", "/etc/vpipe"]
    assert env(proxy)["VPIPE_HOST"] == "0.0.0.0"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert sorted(m["mountPath"] for m in proxy["volumeMounts"]) == [
        "/etc/vpipe", "/var/run/vpipe/secrets/deepseek", "/var/run/vpipe/secrets/team.glm"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["vpipe-config"]["configMap"] == {"name": "vpipe-config", "optional": True}
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "vpipe-gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    service = find(docs, "Service", "vpipe-gateway")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("grace", [6, 60, 300])
def test_gateway_drains_before_it_is_killed(grace: int) -> None:
    """VPIPE_SHUTDOWN_TIMEOUT bounds the proxy's whole drain, and the chart derives it from
    terminationGracePeriodSeconds so the drain ends 5 s before the kubelet's SIGKILL."""
    docs = template({"gateway": {"enabled": True, "terminationGracePeriodSeconds": grace}})
    pod = find(docs, "Deployment", "vpipe-gateway")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == grace
    timeout = int(env(pod["containers"][0])["VPIPE_SHUTDOWN_TIMEOUT"])
    assert timeout > 0 and timeout + 5 <= grace


def test_gateway_session_affinity() -> None:
    service = find(template({"gateway": {"enabled": True}}), "Service", "vpipe-gateway")
    assert service["spec"]["sessionAffinity"] == "None"
    sticky = template({"gateway": {"enabled": True, "service": {"sessionAffinity": "ClientIP"}}})
    assert find(sticky, "Service", "vpipe-gateway")["spec"]["sessionAffinity"] == "ClientIP"
    assert "sessionAffinity" in template_error(
        {"gateway": {"enabled": True, "service": {"sessionAffinity": "Cookie"}}})


def test_gateway_without_hpa_has_replicas() -> None:
    docs = template({"gateway": {"enabled": True, "replicas": 3}})
    assert find(docs, "Deployment", "vpipe-gateway")["spec"]["replicas"] == 3
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]


def test_service_monitor_needs_the_gateway() -> None:
    assert "set gateway.enabled=true too" in template_error({"serviceMonitor": {"enabled": True}})


# --- values --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "needle"), [
    ({"webhook": {"failurePolicy": "Maybe"}}, "failurePolicy"),
    ({"webhook": {"timeoutSeconds": 60}}, "timeoutSeconds"),
    ({"operator": {"replicas": -1}}, "replicas"),
    ({"operator": {"namespaces": ["Team_A"]}}, "namespaces"),
    ({"proxy": {"resources": {"requests": {"cpu": "lots"}}}}, "cpu"),
    ({"gatway": {"enabled": True}}, "gatway"),  # a typo is an error, not a silent no-op
])
def test_schema_rejects_bad_values(values: dict[str, Any], needle: str) -> None:
    assert needle in template_error(values)


def test_every_value_is_documented() -> None:
    values = valuesdoc.parse(valuesdoc.VALUES.read_text())
    assert [v.path for v in values if not v.description] == []
    defaults = yaml.safe_load(valuesdoc.VALUES.read_text())

    def leaves(node: Any, prefix: str = "") -> set[str]:
        if isinstance(node, dict) and node:
            return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in node.items()))
        return {prefix.rstrip(".")}

    assert leaves(defaults) <= {v.path for v in values}  # the parser saw every key


def test_install_docs_hold_the_generated_values_table() -> None:
    assert valuesdoc.documented() == valuesdoc.generated(), (
        "docs/install.md's values table is stale: run `python -m tests.chart.valuesdoc --write`")


def test_notes_tell_the_next_command() -> None:
    out = helm.run("install", helm.RELEASE, str(CHART), "--namespace", NAMESPACE,
                   "--dry-run=client", values=GATEWAY).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl -n vpipe-system rollout status deployment/vpipe-operator" in notes
    assert "kubectl label namespace team-a vpipe.io/inject=enabled" in notes
    assert "port-forward service/vpipe-gateway" in notes


@pytest.mark.parametrize("doc", ["install.md", "gitops.md", "troubleshooting.md"])
def test_yaml_examples_in_the_docs_parse(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        try:
            list(yaml.safe_load_all(block))
        except yaml.YAMLError as e:
            pytest.fail(f"docs/{doc}: a YAML example does not parse: {e}")
