"""The config watcher fed every class of broken config, generated: none gets through, none
kills it.

Aspects, against one real proxy per source kind (local resource files; a rendered document as
a mounted ConfigMap holds it) and a real fake upstream: each generated broken config (bad URLs,
regexes RE2 rejects or too long, secret keys that are paths, secret values that would break a
header, missing secrets, wrong types, truncated YAML/JSON, documents edited past validation and
re-signed) is rejected with the last good revision still served, /readyz says why, no background
task has failed, and the next good config loads. A key that is a path never makes the proxy
send the file it names: requests upstream carry only the good key.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.proxy import pipeline, route, write_resources
from tests.support.threaded_proxy import ThreadedProxy, threaded_proxy
from vpipe_api.document import canonical_json, instance_key
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_api.secrets import header_value_problem
from vpipe_proxy.sources import DocumentFileSource, ResourceFilesSource

GOOD_KEY = "sk-good-0123456789"
TOKEN = "service-account-token-must-never-leave"
EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


# --- generated broken pieces --------------------------------------------------------------------

bad_urls = st.one_of(
    st.integers(65536, 10**7).map(lambda port: f"http://host:{port}/v1"),
    st.sampled_from(["ftp", "file", "gopher", "ws"]).map(lambda s: f"{s}://host/v1"),
    st.text(alphabet="abc=&", min_size=1, max_size=5).map(lambda q: f"http://host/v1?{q}"),
    st.text(alphabet="abc", min_size=1, max_size=5).map(lambda f: f"http://host/v1#{f}"),
    st.text(alphabet="\r\n \t\x00", min_size=1, max_size=3).map(lambda w: f"http://host/v{w}1"),
    st.sampled_from(["http://@host/v1", "http://user:pw@host/v1", "http://[::1/v1",
                     "https://exämple.com/v1", "http://host:0/v1", "http://", "http:///v1",
                     "http://host:-1/v1", "http://host:port/v1", "//host/v1",
                     "http://" + "h" * 3000 + "/v1"]),
)
bad_regexes = st.one_of(
    st.sampled_from(["re:(?=x)", "re:(?!x)y", "re:(a)\\1", "re:(x", "re:x{1001}", "re:(?<=a)b",
                     "re:[z-a]", "re:*", "re:((a{100}){100}){100}", "re:(?P<n>a)(?P=n)",
                     "re:", "gpt-[4", "re:\\"]),
    st.integers(513, 20_000).map(lambda n: "re:" + "a" * (n - 3)),
    st.integers(1, 30).map(lambda n: "re:" + "(a|b)*" * 200 + "(" * n),
)
PATH_KEYS = ["/etc/passwd", "../token", "../../token", ".", "..", "a/../../token", "sub/key",
             "..data/../../token"]
bad_secret_keys = st.one_of(
    st.sampled_from(PATH_KEYS),
    st.text(alphabet="ab./", min_size=1, max_size=8).filter(
        lambda k: "/" in k or k in (".", "..")),
)
bad_secret_values = st.text(min_size=1, max_size=24).filter(
    lambda v: header_value_problem(v.strip()) is not None)
missing_secret_names = st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True).filter(
    lambda n: n not in ("good", "bad"))
not_scalars = st.one_of(st.lists(st.integers(), min_size=1, max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), min_size=1,
                                        max_size=2))
not_containers = st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.floats())
bad_headers = st.one_of(
    st.tuples(st.just("x-extra"), st.text(min_size=1, max_size=8).filter(
        lambda v: header_value_problem(v) is not None)),
    st.tuples(st.sampled_from(["bad header", "x:y", "", "x\r\ny", "é"]), st.just("v")),
)


# --- configs -----------------------------------------------------------------------------------

def provider(url: str, **override: Any) -> dict[str, Any]:
    return {"family": "openai-compatible", "baseUrl": url,
            "credentials": {"secretRef": {"name": "good", "key": "api-key"}}, **override}


def good_config(url: str, marker: int) -> list[dict[str, Any]]:
    """A valid config; `marker` makes its revision new."""
    return [pipeline("p", provider(url)), route("r", ["m-*", f"marker-{marker}"], "p")]


def with_provider(url: str, **override: Any) -> list[dict[str, Any]]:
    return [pipeline("p", provider(url, **override)), route("r", ["m-*"], "p")]


def kubernetes_secret(directory: Path, name: str, key: str, value: str) -> None:
    """A Secret volume as kubelet writes it (`key -> ..data/key -> ..<stamp>/key`)."""
    volume = directory / name
    volume.mkdir(parents=True)
    (volume / "..2026_12_04").mkdir()
    (volume / "..2026_12_04" / key).write_text(value)
    os.symlink("..2026_12_04", volume / "..data")
    os.symlink(f"..data/{key}", volume / key)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    (root / "token").write_text(TOKEN)  # what an escaping key would find
    kubernetes_secret(root / "secrets", "good", "api-key", GOOD_KEY)
    (root / "secrets" / "bad").mkdir()
    (root / "resources").mkdir()
    (root / "document").mkdir()
    return {name: root / name for name in ("secrets", "resources", "document")}


@pytest.fixture(scope="module")
def local(places: dict[str, Path]) -> Iterator[ThreadedProxy]:
    with threaded_proxy(ResourceFilesSource([places["resources"]]),
                        secrets_dir=str(places["secrets"])) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def mounted(places: dict[str, Path]) -> Iterator[ThreadedProxy]:
    with threaded_proxy(DocumentFileSource(places["document"]),
                        secrets_dir=str(places["secrets"])) as proxy:
        yield proxy


# --- the checks ---------------------------------------------------------------------------------

def wait_for(proxy: ThreadedProxy, done: Callable[[dict[str, Any]], bool],
             what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        ready = proxy.readyz()
        if done(ready):
            return ready
        assert time.monotonic() < deadline, f"{what}: /readyz says {ready}"
        time.sleep(0.01)


def no_task_failed(ready: dict[str, Any]) -> None:
    failures = {name: task["failures"] for name, task in ready["backgroundTasks"].items()}
    assert set(failures) >= {"config-watcher"} and not any(failures.values()), ready


def load_good(proxy: ThreadedProxy, write: Callable[[int], None]) -> str:
    marker = time.monotonic_ns()
    before = proxy.readyz()["revision"]
    write(marker)
    ready = wait_for(proxy, lambda r: r["revision"] not in (None, before)
                     and r["lastReload"]["ok"], "the good config loads")
    no_task_failed(ready)
    return str(ready["revision"])


def rejected(proxy: ThreadedProxy, write: Callable[[], None], *says: str) -> dict[str, Any]:
    """Write a broken config; it must be rejected with the last good revision kept."""
    before = proxy.readyz()
    write()
    # A poll between writing the staging file and renaming it re-reads the old config (an
    # attempt that changes nothing): wait for the attempt that read the new one.
    ready = wait_for(proxy, lambda r: r["lastReload"]["attempts"] > before["lastReload"]["attempts"]
                     and (r["lastReload"]["ok"] is False or r["revision"] != before["revision"]),
                     "the broken config rejected")
    assert ready["ready"] and ready["revision"] == before["revision"], ready
    assert ready["lastReload"]["ok"] is False and ready["lastReload"]["error"], ready
    for text in says:
        assert text in ready["lastReload"]["error"], ready["lastReload"]["error"]
    assert "Traceback" not in ready["lastReload"]["error"]
    no_task_failed(ready)
    return ready


def write_local(proxy: ThreadedProxy, places: dict[str, Path],
                docs: list[dict[str, Any]]) -> Callable[[], None]:
    return lambda: write_resources(places["resources"], docs)


def chat_through(proxy: ThreadedProxy) -> None:
    status, body = proxy.http("POST", proxy.server.url + "/v1/chat/completions",
                              {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200, body


def local_good(proxy: ThreadedProxy, places: dict[str, Path]) -> str:
    return load_good(proxy, lambda marker: write_resources(
        places["resources"], good_config(proxy.upstream_url, marker)))


# --- local mode: resources rendered in process --------------------------------------------------

@EXAMPLES
@given(url=bad_urls)
def test_bad_base_urls(local: ThreadedProxy, places: dict[str, Path], url: str) -> None:
    local_good(local, places)
    rejected(local, write_local(local, places, with_provider(url)), "baseUrl")


@EXAMPLES
@given(pattern=bad_regexes)
def test_bad_model_patterns(local: ThreadedProxy, places: dict[str, Path], pattern: str) -> None:
    local_good(local, places)
    docs = [pipeline("p", provider(local.upstream_url)), route("r", ["m-*", pattern], "p")]
    rejected(local, write_local(local, places, docs), "spec.match.models[1]")


@EXAMPLES
@given(key=bad_secret_keys)
def test_secret_keys_that_are_paths(local: ThreadedProxy, places: dict[str, Path],
                                    key: str) -> None:
    local_good(local, places)
    docs = with_provider(local.upstream_url,
                         credentials={"secretRef": {"name": "good", "key": key}})
    rejected(local, write_local(local, places, docs), "secretRef.key")
    seen = len(local.fake.requests)
    chat_through(local)  # still served by the good config, with the good key only
    for request in local.fake.requests[seen:]:
        assert request.headers.get("Authorization") == f"Bearer {GOOD_KEY}"
    assert not any(TOKEN in str(r.headers) for r in local.fake.requests)


@EXAMPLES
@given(value=bad_secret_values)
def test_secret_values_that_break_a_header(local: ThreadedProxy, places: dict[str, Path],
                                           value: str) -> None:
    local_good(local, places)
    (places["secrets"] / "bad" / "api-key").write_bytes(value.encode("utf-8", "surrogatepass"))
    docs = with_provider(local.upstream_url,
                         credentials={"secretRef": {"name": "bad", "key": "api-key"}})
    ready = rejected(local, write_local(local, places, docs), "secret bad/api-key")
    if value.strip():
        assert value.strip() not in ready["lastReload"]["error"].split("secret bad/api-key")[1]


@EXAMPLES
@given(name=missing_secret_names)
def test_missing_secrets(local: ThreadedProxy, places: dict[str, Path], name: str) -> None:
    local_good(local, places)
    docs = with_provider(local.upstream_url,
                         credentials={"secretRef": {"name": name, "key": "api-key"}})
    rejected(local, write_local(local, places, docs), f"secret {name}/api-key not found")


@EXAMPLES
@given(where=st.sampled_from(["priority", "maxConnections"]), scalar=not_scalars,
       container_at=st.sampled_from(["models", "modules", "headers", "timeouts", "match"]),
       container=not_containers, pick=st.booleans())
def test_wrong_types(local: ThreadedProxy, places: dict[str, Path], where: str, scalar: Any,
                     container_at: str, container: Any, pick: bool) -> None:
    local_good(local, places)
    docs = copy.deepcopy(good_config(local.upstream_url, 0))
    spots = {"priority": docs[1]["spec"], "maxConnections": docs[0]["spec"]["modules"][0]["provider"],
             "models": docs[1]["spec"]["match"], "modules": docs[0]["spec"],
             "headers": docs[0]["spec"]["modules"][0]["provider"],
             "timeouts": docs[0]["spec"]["modules"][0]["provider"], "match": docs[1]["spec"]}
    if pick:
        spots[where][where] = scalar
    else:
        spots[container_at][container_at] = container
    rejected(local, write_local(local, places, docs))


@EXAMPLES
@given(header=bad_headers)
def test_bad_extra_headers(local: ThreadedProxy, places: dict[str, Path],
                           header: tuple[str, str]) -> None:
    local_good(local, places)
    docs = with_provider(local.upstream_url, headers={header[0]: header[1]})
    rejected(local, write_local(local, places, docs), "headers")


@EXAMPLES
@given(cut=st.floats(0.0, 0.999))
def test_truncated_yaml(local: ThreadedProxy, places: dict[str, Path], cut: float) -> None:
    local_good(local, places)
    text = yaml.safe_dump_all(good_config(local.upstream_url, 1), sort_keys=False)
    broken = text[:int(len(text) * cut)] + "\n{unclosed: [\n"

    def write() -> None:
        staging = places["resources"] / ".vpipe.yaml.tmp"
        staging.write_text(broken)
        os.replace(staging, places["resources"] / "vpipe.yaml")

    rejected(local, write)


# --- a rendered document, as the mounted ConfigMap holds it -----------------------------------

def document(url: str, marker: int) -> dict[str, Any]:
    resources = parse_resources(good_config(url, marker))
    return dict(orjson.loads(render(resources.pipelines, resources.routes).to_json()))


def signed(doc: dict[str, Any]) -> bytes:
    """`doc` with the instance keys and revision its content hashes to: as if edited and
    re-rendered by a tool that skipped validation (or an older operator that checked less)."""
    keys = {old: instance_key(i["type"], i["config"]) for old, i in doc["instances"].items()}
    doc["instances"] = {keys[old]: i for old, i in doc["instances"].items()}
    for pipeline_doc in doc["pipelines"].values():
        for module in pipeline_doc["modules"]:
            module["instance"] = keys[module["instance"]]
    body = {k: v for k, v in doc.items() if k != "revision"}
    doc["revision"] = hashlib.sha256(canonical_json(body)).hexdigest()[:16]
    return orjson.dumps(doc)


def write_document(places: dict[str, Path], raw: bytes) -> None:
    staging = places["document"] / ".config.json.tmp"
    staging.write_bytes(raw)
    os.replace(staging, places["document"] / "config.json")


def mounted_good(proxy: ThreadedProxy, places: dict[str, Path]) -> str:
    return load_good(proxy, lambda marker: write_document(
        places, signed(document(proxy.upstream_url, marker))))


def provider_config(doc: dict[str, Any]) -> dict[str, Any]:
    (instance,) = doc["instances"].values()
    config: dict[str, Any] = instance["config"]
    return config


@EXAMPLES
@given(cut=st.floats(0.0, 0.999))
def test_truncated_documents(mounted: ThreadedProxy, places: dict[str, Path], cut: float) -> None:
    mounted_good(mounted, places)
    raw = signed(document(mounted.upstream_url, 2))
    rejected(mounted, lambda: write_document(places, raw[:int(len(raw) * cut)]))


EDITS: list[tuple[str, Callable[[dict[str, Any], Any], None], st.SearchStrategy[Any]]] = [
    ("baseUrl", lambda d, v: provider_config(d).update(baseUrl=v), bad_urls),
    ("maxConnections", lambda d, v: provider_config(d).update(maxConnections=v),
     st.one_of(st.integers(-5, 0), not_scalars, st.text(max_size=3))),
    ("timeouts", lambda d, v: provider_config(d).update(timeouts=v), not_containers),
    ("headers", lambda d, v: provider_config(d).update(headers={v[0]: v[1]}), bad_headers),
    ("secret key", lambda d, v: provider_config(d)["credentials"].update(key=v), bad_secret_keys),
    ("secret name", lambda d, v: provider_config(d)["credentials"].update(name=v),
     st.sampled_from(["../good", "/etc", "good/..", "GOOD", ".."])),
    ("models", lambda d, v: d["routes"][0]["models"].append(v), bad_regexes),
    ("protocol", lambda d, v: provider_config(d).update(protocol=v),
     st.text(max_size=8).filter(lambda p: p not in ("openai-chat",))),
]


def test_an_instance_key_that_does_not_hash_its_config_is_refused(
        mounted: ThreadedProxy, places: dict[str, Path]) -> None:
    """Else the pool would reuse the live instance under that key, unbuilt and unchecked."""
    mounted_good(mounted, places)
    doc = document(mounted.upstream_url, 4)
    provider_config(doc)["credentials"]["key"] = "../../token"
    body = {k: v for k, v in doc.items() if k != "revision"}
    doc["revision"] = hashlib.sha256(canonical_json(body)).hexdigest()[:16]
    rejected(mounted, lambda: write_document(places, orjson.dumps(doc)), "does not match its config")


@EXAMPLES
@given(data=st.data(), edit=st.sampled_from(EDITS))
def test_documents_edited_past_validation(
        mounted: ThreadedProxy, places: dict[str, Path], data: st.DataObject,
        edit: tuple[str, Callable[[dict[str, Any], Any], None], st.SearchStrategy[Any]]) -> None:
    mounted_good(mounted, places)
    doc = document(mounted.upstream_url, 3)
    _, apply, values = edit
    apply(doc, data.draw(values))
    raw = signed(doc)
    rejected(mounted, lambda: write_document(places, raw))
    seen = len(mounted.fake.requests)
    chat_through(mounted)
    assert all(r.headers.get("Authorization") == f"Bearer {GOOD_KEY}"
               for r in mounted.fake.requests[seen:])
    assert not any(TOKEN in str(r.headers) for r in mounted.fake.requests)
