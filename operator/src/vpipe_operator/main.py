"""The operator's command line: `python -m vpipe_operator` and `vpipe operator` call `main(argv)`.

Settings come from the environment (`settings.OperatorSettings`); flags override them for a run.
Exit codes: 0 after a graceful stop, 2 for unusable settings or credentials (the message says
which variable or file is at fault).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence

import kopf

from vpipe_operator import errors
from vpipe_operator.credentials import load_credentials
from vpipe_operator.runtime import Runtime
from vpipe_operator.settings import OperatorSettings, parse_namespaces


def build_parser(prog: str = "vpipe operator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Watch vpipe Pipelines and Routes and write each namespace's vpipe-config "
        "ConfigMap, status conditions and Events. Settings: VPIPE_OPERATOR_* env vars "
        "(docs/operator.md); credentials: KUBECONFIG, else the pod's service account.",
    )
    parser.add_argument("-n", "--namespaces", metavar="NS[,NS...]",
                        help="serve only these namespaces (default: VPIPE_OPERATOR_NAMESPACES, "
                        "empty = all)")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="serve every namespace, whatever VPIPE_OPERATOR_NAMESPACES says")
    parser.add_argument("--peering", metavar="NAME",
                        help="kopf peering object for several replicas, one active "
                        "(default: VPIPE_OPERATOR_PEERING, empty = standalone)")
    parser.add_argument("--standalone", action="store_true",
                        help="run without peering, whatever VPIPE_OPERATOR_PEERING says")
    parser.add_argument("--priority", type=int, help="peering priority (highest is active)")
    parser.add_argument("--liveness", metavar="URL",
                        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> OperatorSettings:
    """Environment settings with the command-line flags applied on top."""
    s = OperatorSettings.from_environ(environ)
    if args.all_namespaces:
        s = dataclasses.replace(s, namespaces=())
    elif args.namespaces is not None:
        s = dataclasses.replace(s, namespaces=parse_namespaces("--namespaces", args.namespaces))
    if args.standalone:
        s = dataclasses.replace(s, peering="")
    elif args.peering is not None:
        s = dataclasses.replace(s, peering=args.peering)
    if args.priority is not None:
        s = dataclasses.replace(s, priority=args.priority)
    if args.liveness is not None:
        s = dataclasses.replace(s, liveness=args.liveness)
    return s


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None,
         prog: str = "vpipe operator") -> int:
    args = build_parser(prog).parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        settings = settings_from(args, env)
        credentials = load_credentials(env)
    except errors.OperatorError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    kopf.configure(verbose=args.verbose, quiet=args.quiet, log_format=kopf.LogFormat.PLAIN)
    asyncio.run(Runtime(settings, credentials).run())
    return 0
