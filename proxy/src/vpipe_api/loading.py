"""Read Pipeline and Route resources from YAML/JSON files (local mode, `vpipe validate`, tests).

Documents of other kinds (Deployments, Secrets, ...) are skipped so an app's manifest folder
can be pointed at directly; a document that claims the vpipe.io group but is malformed is an
error, reported together with every other one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vpipe_api import API_GROUP, GROUP_VERSION
from vpipe_api.errors import ConfigInvalid, Issue
from vpipe_api.resources import Pipeline, Route

SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's parser when PyYAML was built with it: ~10x faster on a 1,000-Route folder.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Resources:
    pipelines: list[Pipeline] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return sorted({p.metadata.namespace for p in self.pipelines}
                      | {r.metadata.namespace for r in self.routes})


def resource_files(paths: Iterable[Path]) -> list[Path]:
    """The files a set of paths names: files as given, a directory's own files (like kubectl -f)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.iterdir()
                # ConfigMap mounts hold ..data links; hidden names are never resources.
                if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigInvalid([Issue(str(path), "", "no such file or directory")])
    return files


def load_resources(paths: Iterable[Path]) -> Resources:
    """Parse every vpipe resource under `paths`; raise `ConfigInvalid` with all problems."""
    resources = Resources()
    issues: list[Issue] = []
    for file in resource_files(paths):
        for index, doc in _documents(file, issues):
            where = f"{file}#{index}" if index else str(file)
            _add(doc, where, resources, issues)
    if issues:
        raise ConfigInvalid(issues)
    return resources


def parse_resources(docs: Iterable[dict[str, Any]], origin: str = "input") -> Resources:
    """Parse already-loaded manifests (for the operator and tests)."""
    resources = Resources()
    issues: list[Issue] = []
    for index, doc in enumerate(docs):
        _add(doc, f"{origin}#{index}", resources, issues)
    if issues:
        raise ConfigInvalid(issues)
    return resources


def _documents(file: Path, issues: list[Issue]) -> Iterator[tuple[int, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        issues.append(Issue(str(file), "", f"cannot be read as YAML: {e}"))
        return
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from ((index, item) for item in doc["items"])
        else:
            yield index, doc


def _add(doc: Any, where: str, resources: Resources, issues: list[Issue]) -> None:
    if not isinstance(doc, dict):
        issues.append(Issue(where, "", "expected a mapping with apiVersion and kind"))
        return
    api_version, kind = str(doc.get("apiVersion", "")), doc.get("kind")
    if not api_version.startswith(API_GROUP + "/"):
        return  # not ours: other manifests may share the folder
    if api_version != GROUP_VERSION:
        issues.append(Issue(where, "apiVersion",
                            f"'{api_version}' is not served; use {GROUP_VERSION}"))
        return
    model: type[Pipeline] | type[Route]
    if kind == "Pipeline":
        model = Pipeline
    elif kind == "Route":
        model = Route
    else:
        issues.append(Issue(where, "kind", f"unknown kind {kind!r}; vpipe.io has Pipeline and Route"))
        return
    raw_meta = doc.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    label = f"{kind}/{meta.get('namespace', 'default')}/{meta.get('name', '?')} ({where})"
    try:
        parsed = model.model_validate(doc)
    except ValidationError as e:
        for error in e.errors():
            issues.append(Issue(label, _loc(error["loc"]), _message(error)))
        return
    if isinstance(parsed, Pipeline):
        resources.pipelines.append(parsed)
    else:
        resources.routes.append(parsed)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _message(error: Any) -> str:
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field; check the spelling against `vpipe explain` docs or the CRD"
    if error["type"] == "missing":
        return "required field is missing"
    return message
