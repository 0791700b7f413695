"""`vpipe` command line: serve, validate, render, explain, rollout.

Each subcommand parses its flags, calls the packages that do the work, and turns their errors
into a message on stderr and a non-zero exit; nothing here decides anything itself.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpipe_api.document import ConfigDocument
from vpipe_api.errors import ConfigInvalid, VpipeApiError
from vpipe_api.loading import Resources, load_resources
from vpipe_api.protocols import CLIENT_PROTOCOLS
from vpipe_api.render import render, render_configmap
from vpipe_proxy.errors import VpipeProxyError
from vpipe_proxy.preflight import build_issues
from vpipe_proxy.routing import Router

if TYPE_CHECKING:
    from vpipe_operator.credentials import Credentials

CLI_USER_AGENT = "vpipe-cli/0.1"  # tells its requests apart from the operator's (audit logs)
CLI_FORBIDDEN = ("your kubeconfig's user may not {verb} {path}: the rollout commands need get and "
                 "patch on routes.vpipe.io in the namespace (docs/rollout.md)")
EXIT_INVALID = 1
EXIT_USAGE = 2

EPILOG = """\
examples:
  vpipe serve -f examples/                 run the proxy locally on the built-in mock provider
  vpipe validate -f examples/providers/    check Pipelines and Routes, list every problem
  vpipe render -f examples/ > cm.yaml      the ConfigMap the operator would write (GitOps)
  vpipe explain -f examples/ --model gpt-4o-mini    which route takes a model, and why
  vpipe crds | kubectl apply -f -          install the Pipeline and Route CRDs
  vpipe promote glm -n team-a              advance a Route's canary one step (docs/rollout.md)
  vpipe abort glm -n team-a --reason "p99 doubled"    all traffic back to the stable pipeline
  vpipe rollout status glm -n team-a       step, active weight, sidecars, analysis
"""


def _resource_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", dest="paths", action="append", type=Path,
                        required=True, metavar="PATH",
                        help="YAML/JSON file or directory of Pipeline and Route resources "
                             "(repeatable; directories are not descended into, like kubectl -f)")
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace to render when the files span several")


ROLLOUT_ACTIONS = {
    "promote": "one step further (past the last step: Promoted, all traffic to the canary)",
    "abort": "weight 0 at once, with --reason recorded in the status",
    "resume": "back to the kept step's weight after abort, or on after pause",
    "pause": "hold at the current weight",
}


def _rollout_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("route", metavar="ROUTE", help="Route name")
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--reason", default=None, help="abort: why (recorded in the status)")
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="wait this long for the operator to apply the action (0: don't)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vpipe", description="vpipe: a Kubernetes-native gateway for LLM APIs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the proxy",
        description="Run the proxy. With -f it renders Pipeline/Route files in process (local "
                    "mode) and reloads when they change; with --config-dir it reads the "
                    "rendered vpipe-config ConfigMap mounted in a pod. Settings not given as "
                    "flags come from VPIPE_* environment variables.")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--filename", dest="paths", action="append", type=Path,
                        metavar="PATH", help="Pipeline/Route YAML file or directory (repeatable)")
    source.add_argument("--config-dir", type=Path, metavar="DIR",
                        help="mounted ConfigMap directory (or file) holding config.json; "
                             "changes arrive with the kubelet's sync (about a minute)")
    source.add_argument("--kubernetes", action="store_true",
                        help="watch the namespace's vpipe-config ConfigMap through the API "
                             "(sub-second updates; the service account needs get/list/watch "
                             "on it, see proxy/rbac/); VPIPE_KUBE_SERVER points elsewhere")
    serve.add_argument("-n", "--namespace", default=None,
                       help="namespace to serve when the files span several")
    serve.add_argument("--host", default=None, help="bind address (VPIPE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="client API port (VPIPE_PORT, 8080)")
    serve.add_argument("--admin-port", type=int, default=None,
                       help="admin port (VPIPE_ADMIN_PORT, 9090)")
    serve.add_argument("--workers", default=None, metavar="N|auto",
                       help="proxy processes sharing the client port (VPIPE_WORKERS, 1); auto: "
                            "one per CPU of the container's limit. Above 1 a supervisor owns "
                            "the admin port and restarts workers that die")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")

    validate = sub.add_parser("validate", help="check resources; exit 1 listing every problem")
    _resource_args(validate)

    render_cmd = sub.add_parser("render", help="print the ConfigMap the operator would write")
    _resource_args(render_cmd)
    render_cmd.add_argument("--format", choices=["configmap", "json"], default="configmap",
                            help="configmap YAML (default) or the bare config document")

    explain = sub.add_parser("explain", help="show which route takes a request, and why")
    _resource_args(explain)
    explain.add_argument("--model", required=True)
    explain.add_argument("--protocol", default="openai-chat", choices=CLIENT_PROTOCOLS)
    explain.add_argument("--prefix", default="", help="front-door path prefix, e.g. /team-a")
    explain.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                         help="request header (repeatable)")
    rollout = sub.add_parser(
        "rollout", help="promote, abort, resume, pause a Route's canary, or show its status",
        description="Stepped canary rollouts (docs/rollout.md). An action sets the annotation "
                    "vpipe.io/rollout on the Route (like `kubectl annotate route NAME "
                    "vpipe.io/rollout=promote --overwrite`); the operator applies it once, removes "
                    "it and records the result in the Route's status. Credentials: $KUBECONFIG, "
                    "else the pod's service account, else ~/.kube/config. `vpipe promote ROUTE` "
                    "(and abort, resume, pause) is short for `vpipe rollout promote ROUTE`.")
    rollout.add_argument("action", choices=[*ROLLOUT_ACTIONS, "status"],
                         help="; ".join(f"{a}: {h}" for a, h in ROLLOUT_ACTIONS.items())
                              + "; status: print the rollout state")
    _rollout_args(rollout)
    for action, what in ROLLOUT_ACTIONS.items():
        shortcut = sub.add_parser(action, help=f"the Route's canary: {what} (= rollout {action})",
                                  description=f"Same as `vpipe rollout {action} ROUTE`: {what}.")
        shortcut.set_defaults(action=action, command="rollout")
        _rollout_args(shortcut)
    sub.add_parser("operator", help="run the Kubernetes operator (see `vpipe operator --help`)",
                   add_help=False)
    sub.add_parser("crds", help="print the Pipeline and Route CRDs (pipe to kubectl apply -f -)",
                   description="Print the CustomResourceDefinitions generated from the CR models; "
                               "the same YAML as crds/ in the repository.")
    return parser


def _load(paths: Sequence[Path]) -> Resources:
    return load_resources(paths)


def cmd_validate(args: argparse.Namespace) -> int:
    resources = _load(args.paths)
    document = render(resources.pipelines, resources.routes, namespace=args.namespace)
    issues = build_issues(document)  # the proxy's own building code: passes here, loads there
    if issues:
        raise ConfigInvalid(issues)
    print(f"OK: {len(document.pipelines)} pipelines, {len(document.routes)} routes, "
          f"{len(document.instances)} module instances in namespace {document.namespace} "
          f"(revision {document.revision})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    resources = _load(args.paths)
    document = render(resources.pipelines, resources.routes, namespace=args.namespace)
    if args.format == "json":
        sys.stdout.write(document.to_json().decode() + "\n")
    else:
        sys.stdout.write(render_configmap(document))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    headers = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"vpipe explain: --header {item!r} must be NAME=VALUE", file=sys.stderr)
            return EXIT_USAGE
        headers[name.strip().lower()] = value
    resources = _load(args.paths)
    document = render(resources.pipelines, resources.routes, namespace=args.namespace)
    router = Router(document.routes)
    chosen = router.route(args.model, args.protocol, args.prefix, headers)
    if chosen is None:
        print(router.no_route_message(args.model, args.protocol, args.prefix, headers))
    else:
        print(f"model {args.model!r} ({args.protocol}) -> route {chosen.name!r} -> pipeline "
              f"{chosen.pipeline!r}")
        canary = chosen.canary.pipeline if chosen.canary is not None else None
        for pipeline in (chosen.pipeline, canary):
            if pipeline is not None:
                print(_mapping_line(document, pipeline, args.model))
    print()
    print(f"{'ROUTE':<24} {'PRIORITY':>8}  {'PIPELINE':<20} VERDICT")
    for v in router.explain(args.model, args.protocol, args.prefix, headers):
        mark = "*" if v.matched else " "
        print(f"{mark}{v.route:<23} {v.priority:>8}  {v.pipeline:<20} {v.reason}")
    return 0 if chosen else EXIT_INVALID


def _mapping_line(document: ConfigDocument, pipeline: str, model: str) -> str:
    provider, upstream, key = document.upstream_model(pipeline, model)
    why = f"modelMap key {key!r}" if key is not None else "no modelMap key matches: sent unchanged"
    return f"  pipeline {pipeline!r} provider {provider!r} sends model {upstream!r} ({why})"


def cmd_serve(args: argparse.Namespace) -> int:
    from vpipe_proxy.cpus import resolve_workers
    from vpipe_proxy.kube_source import KubernetesConfigSource
    from vpipe_proxy.server import ProxyServer, run, run_until_signalled
    from vpipe_proxy.settings import Settings
    from vpipe_proxy.sources import DocumentFileSource, ResourceFilesSource
    from vpipe_proxy.worker_process import SourceFactory
    from vpipe_proxy.workers import serve_workers

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_environ(os.environ, host=args.host, port=args.port,
                                     admin_port=args.admin_port, workers=args.workers,
                                     wait_for_config=True if args.paths is None else None)
    make_source: SourceFactory  # a factory that pickles: each worker makes its own source
    if args.kubernetes:
        make_source = functools.partial(KubernetesConfigSource.from_environ, args.namespace,
                                        dict(os.environ))
    elif args.config_dir is not None:
        make_source = functools.partial(DocumentFileSource, args.config_dir)
    else:
        make_source = functools.partial(ResourceFilesSource, args.paths, namespace=args.namespace)
    workers = resolve_workers(settings.workers)
    if workers > 1:
        run(serve_workers(settings, make_source, workers, args.log_level.upper()))
    else:
        run(run_until_signalled(ProxyServer(settings, make_source())))
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    from vpipe_operator.crds import render_crds

    sys.stdout.write("---\n".join(render_crds().values()))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from vpipe_operator.credentials import load_credentials
    from vpipe_operator.errors import OperatorError

    try:
        credentials = load_credentials(os.environ)
        return asyncio.run(_rollout(args, credentials))
    except OperatorError as e:
        print(f"vpipe rollout: {e}", file=sys.stderr)
        return EXIT_INVALID


async def _rollout(args: argparse.Namespace, credentials: Credentials) -> int:
    from vpipe_operator import kube, rollout

    namespace = args.namespace or credentials.namespace or "default"
    async with kube.KubeClient(credentials, user_agent=CLI_USER_AGENT,
                               forbidden_advice=CLI_FORBIDDEN) as client:
        obj = await client.get(kube.ROUTES, namespace, args.route)
        if obj is None:
            print(f"vpipe rollout: Route '{args.route}' not found in namespace '{namespace}'",
                  file=sys.stderr)
            return EXIT_INVALID
        if args.action != "status":
            annotations = {rollout.ANNOTATION: args.action,
                           rollout.REASON_ANNOTATION: args.reason if args.action == "abort"
                           else None}
            obj = await client.patch(kube.ROUTES, namespace, args.route,
                                     {"metadata": {"annotations": annotations}})
            deadline = asyncio.get_running_loop().time() + args.wait
            while _pending(obj, rollout.ANNOTATION):
                message = str(((obj.get("status") or {}).get("rollout") or {}).get("message", ""))
                if message.startswith(f"waiting: {args.action}"):
                    # Held by the sidecar gate: it applies by itself once the proxies catch up.
                    print(f"requested {args.action}; it is pending (the annotation stays until "
                          "it applies):")
                    break
                if asyncio.get_running_loop().time() >= deadline:
                    print(f"requested {args.action}; the operator has not applied it yet "
                          f"(is it running?): see `vpipe rollout status {args.route} -n "
                          f"{namespace}`")
                    return 0
                await asyncio.sleep(0.2)
                obj = await client.get(kube.ROUTES, namespace, args.route) or {}
            await asyncio.sleep(0.2)  # the status is written right after the annotation goes
            obj = await client.get(kube.ROUTES, namespace, args.route) or obj
    print(_describe_rollout(obj))
    return 0


def _pending(obj: dict[str, Any], annotation: str) -> bool:
    return annotation in ((obj.get("metadata") or {}).get("annotations") or {})


def _describe_rollout(obj: dict[str, Any]) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    canary = spec.get("canary")
    name = f"Route {meta.get('namespace')}/{meta.get('name')}"
    if not canary:
        return f"{name}: no canary (spec.canary is unset); pipeline {spec.get('pipeline')}"
    rollout = status.get("rollout") or {}
    steps = canary.get("steps") or f"none (weight from spec.canary.weight: {canary.get('weight', 0)})"
    lines = [
        f"{name}: stable {spec.get('pipeline')}, canary {canary.get('pipeline')}",
        f"  phase:         {rollout.get('phase', 'unknown (not reconciled yet)')}",
        f"  active weight: {status.get('activeWeight', '-')}%",
        f"  steps:         {steps}",
        f"  current step:  {rollout.get('currentStep', '-')}",
        f"  since:         {rollout.get('lastTransitionTime', '-')}",
        f"  message:       {rollout.get('message', '')}",
    ]
    sidecars = status.get("sidecars")
    if sidecars:
        lines.append(f"  sidecars:      {sidecars.get('summary', '-')} serve revision "
                     f"{sidecars.get('revision') or '-'}: {sidecars.get('message', '')}")
    analysis = rollout.get("analysis")
    if analysis:
        results = ", ".join(f"{r.get('name')} {r.get('value')} ({r.get('verdict')})"
                            for r in analysis.get("results") or []) or "no check yet"
        lines.append(f"  analysis:      step {analysis.get('step')}: {analysis.get('passes', 0)} "
                     f"passed, {analysis.get('failures', 0)} failed in a row; last check "
                     f"{analysis.get('lastCheckTime', '-')}: {results}")
    return "\n".join(lines)


COMMANDS = {"crds": cmd_crds, "serve": cmd_serve, "validate": cmd_validate, "render": cmd_render,
            "explain": cmd_explain, "rollout": cmd_rollout}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:  # its flags belong to the operator's own parser
        from vpipe_operator.main import main as operator_main

        return operator_main(argv[1:], prog="vpipe operator")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (VpipeApiError, VpipeProxyError) as e:
        print(f"vpipe {args.command}: {e}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
