"""Settings from the environment and command-line flags (`settings`, `main`).

Defaults, parsing of every kind of value, errors that name the variable and say what is
expected, flags overriding the environment, and `main` refusing unusable settings with exit 2.
"""

from __future__ import annotations

import pytest

from vpipe_operator import main
from vpipe_operator.errors import SettingsError
from vpipe_operator.settings import OperatorSettings


def test_defaults() -> None:
    s = OperatorSettings.from_environ({})
    assert s == OperatorSettings()
    assert s.clusterwide and s.debounce == 0.5 and s.peering == "" and s.scanning
    assert s.watch_client_timeout > s.watch_server_timeout


def test_values_are_parsed() -> None:
    s = OperatorSettings.from_environ({
        "VPIPE_OPERATOR_NAMESPACES": " team-a, team-b ,team-a,",
        "VPIPE_OPERATOR_DEBOUNCE": "0.2",
        "VPIPE_OPERATOR_CONCURRENCY": "8",
        "VPIPE_OPERATOR_MAX_EVENTS": "0",
        "VPIPE_OPERATOR_PEERING": "vpipe",
        "VPIPE_OPERATOR_PRIORITY": "-5",
        "VPIPE_OPERATOR_SCANNING": "false",
        "VPIPE_OPERATOR_SECRET_RECHECK": "",  # empty keeps the default
    })
    assert s.namespaces == ("team-a", "team-b") and not s.clusterwide
    assert (s.debounce, s.concurrency, s.max_events) == (0.2, 8, 0)
    assert (s.peering, s.priority, s.scanning) == ("vpipe", -5, False)
    assert s.secret_recheck == 30.0


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("NAMESPACES", "Team_A", "is not a namespace name"),
    ("DEBOUNCE", "soon", "Needs to be a number of seconds"),
    ("DEBOUNCE", "-1", "Needs to be zero or more seconds"),
    ("SECRET_RECHECK", "0", "Needs to be a positive number of seconds"),
    ("CONCURRENCY", "0", "Needs to be a positive integer"),
    ("MAX_EVENTS", "-1", "Needs to be zero or a positive integer"),
    ("PRIORITY", "high", "Needs to be an integer"),
    ("SCANNING", "maybe", "Needs to be true or false"),
])
def test_bad_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        OperatorSettings.from_environ({f"VPIPE_OPERATOR_{name}": value})
    assert f"Invalid VPIPE_OPERATOR_{name}={value!r}" in str(caught.value)
    assert expected in str(caught.value)


def test_flags_override_the_environment() -> None:
    env = {"VPIPE_OPERATOR_NAMESPACES": "a", "VPIPE_OPERATOR_PEERING": "p"}
    parser = main.build_parser()
    s = main.settings_from(parser.parse_args(["-A", "--standalone", "--priority", "3"]), env)
    assert s.namespaces == () and s.peering == "" and s.priority == 3
    s = main.settings_from(parser.parse_args(["-n", "x,y", "--peering", "q",
                                              "--liveness", "http://0.0.0.0:8080/healthz"]), env)
    assert s.namespaces == ("x", "y") and s.peering == "q"
    assert s.liveness == "http://0.0.0.0:8080/healthz"
    assert main.settings_from(parser.parse_args([]), env).namespaces == ("a",)


def test_main_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main([], environ={"VPIPE_OPERATOR_DEBOUNCE": "x"}) == 2
    assert "Invalid VPIPE_OPERATOR_DEBOUNCE='x'" in capsys.readouterr().err
    assert main.main([], environ={"KUBECONFIG": "/nonexistent/kubeconfig"}) == 2
    assert "/nonexistent/kubeconfig does not exist" in capsys.readouterr().err
