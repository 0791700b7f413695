"""Reading Pipeline and Route resources from files (`vpipe_api.loading`).

Covers multi-document YAML, JSON files, `kind: List`, empty documents, which files of a
directory are read (own .yaml/.yml/.json files only: hidden files and subdirectories are
skipped, explicitly named files are always read), foreign manifests skipped, unreadable or
non-UTF-8 files and missing paths reported as Issues naming the file, document indexes in
issue locations, every problem collected at once, and that the repository's examples/ and
examples/providers/ load and render cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpipe_api.errors import ConfigInvalid, Issue
from vpipe_api.loading import Resources, load_resources, parse_resources, resource_files
from vpipe_api.render import render

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PIPELINE = """\
apiVersion: vpipe.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  modules:
    - type: provider
      provider: {{family: mock}}
"""

ROUTE = """\
apiVersion: vpipe.io/v1alpha1
kind: Route
metadata: {{name: {name}}}
spec:
  match: {{models: ["{model}"]}}
  pipeline: {pipeline}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def names(resources: Resources) -> tuple[list[str], list[str]]:
    return (
        sorted(p.metadata.name for p in resources.pipelines),
        sorted(r.metadata.name for r in resources.routes),
    )


def load_issues(*paths: Path) -> list[Issue]:
    with pytest.raises(ConfigInvalid) as info:
        load_resources(list(paths))
    return list(info.value.issues)


# --------------------------------------------------------------------------- files and documents


def test_multi_document_yaml(tmp_path: Path) -> None:
    text = "---\n".join(
        [PIPELINE.format(name="p"), DEPLOYMENT, ROUTE.format(name="r", model="m", pipeline="p")]
    )
    write(tmp_path / "all.yaml", "# leading comment\n---\n" + text + "---\n")
    resources = load_resources([tmp_path])
    assert names(resources) == (["p"], ["r"])
    assert resources.namespaces == ["default"]


def test_kind_list(tmp_path: Path) -> None:
    items = [
        {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"},
         "spec": {"modules": [{"type": "provider", "provider": {"family": "mock"}}]}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
        {"apiVersion": "vpipe.io/v1alpha1", "kind": "Route", "metadata": {"name": "r"},
         "spec": {"match": {"models": ["m"]}, "pipeline": "p"}},
    ]  # fmt: skip
    write(tmp_path / "list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert names(load_resources([tmp_path])) == (["p"], ["r"])


def test_yaml_json_and_yml_suffixes_are_read_others_ignored(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PIPELINE.format(name="a"))
    write(tmp_path / "b.yml", PIPELINE.format(name="b"))
    module = {"type": "provider", "provider": {"family": "mock"}}
    c = {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "c"},
         "spec": {"modules": [module]}}  # fmt: skip
    write(tmp_path / "c.json", json.dumps(c))
    write(tmp_path / "README.md", "kind: not yaml at all: [")
    write(tmp_path / "d.yaml.bak", PIPELINE.format(name="d"))
    assert names(load_resources([tmp_path])) == (["a", "b", "c"], [])
    assert [f.name for f in resource_files([tmp_path])] == ["a.yaml", "b.yml", "c.json"]


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", PIPELINE.format(name="p"))
    write(tmp_path / ".hidden.yaml", PIPELINE.format(name="hidden"))
    write(tmp_path / ".broken.yaml", "key: [unclosed")
    assert names(load_resources([tmp_path])) == (["p"], [])


def test_configmap_mount_layout_reads_only_the_visible_link(tmp_path: Path) -> None:
    data = tmp_path / "..2024_01_01"
    write(data / "config.yaml", PIPELINE.format(name="p"))
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    assert [f.name for f in resource_files([tmp_path])] == ["config.yaml"]
    assert names(load_resources([tmp_path])) == (["p"], [])


def test_subdirectories_are_not_descended(tmp_path: Path) -> None:
    write(tmp_path / "top.yaml", PIPELINE.format(name="top"))
    write(tmp_path / "nested" / "deep.yaml", PIPELINE.format(name="deep"))
    write(
        tmp_path / "nested.yaml" / "inner.yaml", PIPELINE.format(name="inner")
    )  # dir named *.yaml
    assert names(load_resources([tmp_path])) == (["top"], [])


def test_explicit_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    hidden = write(tmp_path / ".p.txt", PIPELINE.format(name="p"))
    assert names(load_resources([hidden])) == (["p"], [])


def test_several_paths_combine(tmp_path: Path) -> None:
    pipes = write(tmp_path / "a" / "p.yaml", PIPELINE.format(name="p"))
    write(tmp_path / "b" / "r.yaml", ROUTE.format(name="r", model="m", pipeline="p"))
    assert names(load_resources([pipes, tmp_path / "b"])) == (["p"], ["r"])


def test_empty_directory_and_empty_file(tmp_path: Path) -> None:
    write(tmp_path / "empty.yaml", "")
    write(tmp_path / "dashes.yaml", "---\n---\n")
    assert names(load_resources([tmp_path])) == ([], [])


# --------------------------------------------------------------------------- problems


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "apiVersion: vpipe.io/v1alpha1\nkind: [unclosed\n")
    write(tmp_path / "good.yaml", PIPELINE.format(name="p"))
    found = load_issues(tmp_path)
    assert len(found) == 1
    assert found[0].resource == str(bad)
    assert found[0].field == ""
    assert found[0].message.startswith("cannot be read as YAML:")


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("metadata: {name: caf\xe9}\n".encode("latin-1"))
    found = load_issues(tmp_path)
    assert [(i.resource, i.field) for i in found] == [(str(bad), "")]
    assert "cannot be read as YAML" in found[0].message


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert load_issues(missing) == [Issue(str(missing), "", "no such file or directory")]


def test_issue_location_names_file_and_document_index(tmp_path: Path) -> None:
    file = write(
        tmp_path / "mixed.yaml",
        PIPELINE.format(name="p") + "---\n" + ROUTE.format(name="r", model="m", pipeline="p")
        + "  priority: high\n",
    )  # fmt: skip
    found = load_issues(tmp_path)
    assert [(i.resource, i.field) for i in found] == [
        (f"Route/default/r ({file}#1)", "spec.priority")
    ]


def test_first_document_location_is_the_bare_file(tmp_path: Path) -> None:
    file = write(tmp_path / "one.yaml", "apiVersion: vpipe.io/v1alpha1\nkind: Gateway\n")
    assert load_issues(tmp_path) == [
        Issue(str(file), "kind", "unknown kind 'Gateway'; vpipe.io has Pipeline and Route")
    ]


def test_scalar_document_is_an_issue(tmp_path: Path) -> None:
    file = write(tmp_path / "s.yaml", "just a string\n")
    assert load_issues(tmp_path) == [
        Issue(str(file), "", "expected a mapping with apiVersion and kind")
    ]


def test_every_file_problem_is_reported_at_once(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "key: [unclosed")
    b = write(tmp_path / "b.yaml", "apiVersion: vpipe.io/v1\nkind: Pipeline\n")
    c = write(tmp_path / "c.yaml", ROUTE.format(name="Bad_Name", model="m", pipeline="p"))
    found = load_issues(tmp_path)
    assert [(i.resource, i.field) for i in found] == [
        (str(a), ""),
        (str(b), "apiVersion"),
        (f"Route/default/Bad_Name ({c})", "metadata.name"),
    ]


@pytest.mark.parametrize("metadata", ["oops", ["a", "b"]], ids=["string", "list"])
def test_non_mapping_metadata_is_an_issue(metadata: object) -> None:
    doc = {"apiVersion": "vpipe.io/v1alpha1", "kind": "Route", "metadata": metadata,
           "spec": {"match": {"models": ["m"]}, "pipeline": "p"}}  # fmt: skip
    with pytest.raises(ConfigInvalid) as info:
        parse_resources([doc])
    assert [i.field for i in info.value.issues] == ["metadata"]


def test_parse_resources_origin_and_index() -> None:
    doc = {"apiVersion": "vpipe.io/v1alpha1", "kind": "Route", "metadata": {"name": "r"},
           "spec": {"match": {"models": []}, "pipeline": "p"}}  # fmt: skip
    with pytest.raises(ConfigInvalid) as info:
        parse_resources([{"kind": "Secret"}, doc], origin="api")
    assert [(i.resource, i.field) for i in info.value.issues] == [
        ("Route/default/r (api#1)", "spec.match.models")
    ]


# --------------------------------------------------------------------------- the repo's examples


def test_examples_load_and_render() -> None:
    resources = load_resources([EXAMPLES])
    assert names(resources) == (["mock-renamed", "mock-v1"], ["mini", "mock-models", "team-a-gold"])
    document = render(resources.pipelines, resources.routes)
    assert [r.name for r in document.routes] == ["mini", "mock-models", "team-a-gold"]
    assert {i.config["family"] for i in document.instances.values()} == {"mock"}


def test_example_providers_load_and_render() -> None:
    resources = load_resources([EXAMPLES / "providers"])
    assert names(resources) == (
        ["deepseek-v1", "glm-v1", "local-ollama", "openai-v1"],
        ["deepseek", "glm", "ollama", "openai"],
    )
    document = render(resources.pipelines, resources.routes)
    families = sorted(i.config["family"] for i in document.instances.values()
                      if i.type == "provider")
    assert families == ["deepseek", "glm", "ollama", "openai"]
    openai = next(i.config for i in document.instances.values()
                  if i.config.get("family") == "openai")
    assert openai["maxConnections"] == 200
    assert openai["timeouts"] == {"connect": 5.0, "firstByte": 60.0, "total": 300.0}
