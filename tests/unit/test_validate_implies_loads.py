""""Passes validate" implies "the proxy builds it", searched over generated provider specs.

For generated base URLs, extra headers, model patterns and secret refs (odd, hostile and
ordinary), either prerun validation rejects the resources naming the field, or the proxy's own
building code (`vpipe_proxy.preflight`: the registry's factories and the router) accepts the
rendered config: never a config that validates and then fails to load.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.support.proxy import pipeline, route
from vpipe_api.errors import ConfigInvalid
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_proxy.preflight import build_issues

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
urls = st.one_of(
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}",
              st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
              st.one_of(st.sampled_from(["api.example.com", "127.0.0.1", "[::1]", "@h", "h:1",
                                         "h:99999", "u:p@h", "h:0", ""]), texts),
              st.one_of(st.sampled_from(["", "/v1", "/v1/", "?q", "#f", "/v 1", "/\r\n"]),
                        texts)),
    texts,
)
headers = st.dictionaries(st.one_of(st.sampled_from(["x-a", "x b", "x:y", "é", ""]), texts),
                          st.one_of(st.sampled_from(["v", " v", "v\r\n", "é", ""]), texts),
                          max_size=2)
patterns = st.one_of(st.sampled_from(["m-*", "re:m-[0-9]+", "re:(a)\\1", "re:(", "m-[", "re:"]),
                     texts, texts.map(lambda t: "re:" + t))
keys = st.one_of(st.sampled_from(["api-key", "../k", "/k", ".", "..", "a/b"]), texts)


GOOD: dict[str, Any] = {"url": "https://api.example.com/v1", "extra": {"x-team": "a"},
                        "model": "m-*", "key": "api-key"}
ODD = {"url": urls, "extra": headers, "model": patterns, "key": keys}


@settings(max_examples=400, deadline=None)
@given(data=st.data(), odd=st.lists(st.sampled_from(sorted(ODD)), min_size=1, max_size=2,
                                    unique=True))
def test_what_validates_is_what_the_proxy_builds(data: st.DataObject, odd: list[str]) -> None:
    """One or two fields generated, the rest ordinary: so most examples reach the proxy's
    building code, and every field's odd values meet it."""
    spec = {**GOOD, **{name: data.draw(ODD[name], label=name) for name in odd}}
    provider: dict[str, Any] = {
        "family": "openai-compatible", "baseUrl": spec["url"], "headers": spec["extra"],
        "credentials": {"secretRef": {"name": "s", "key": spec["key"]}}}
    try:
        resources = parse_resources([pipeline("p", provider), route("r", [spec["model"]], "p")])
        document = render(resources.pipelines, resources.routes)
    except ConfigInvalid:
        event("rejected by validation")
        return  # what it says is tested elsewhere
    event("validated")
    assert build_issues(document) == []
