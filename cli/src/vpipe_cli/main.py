"""`vpipe` command line: serve, validate, render, explain.

Each subcommand parses its flags, calls the packages that do the work, and turns their errors
into a message on stderr and a non-zero exit; nothing here decides anything itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vpipe_api.errors import VpipeApiError
from vpipe_api.loading import Resources, load_resources
from vpipe_api.protocols import CLIENT_PROTOCOLS
from vpipe_api.render import render, render_configmap
from vpipe_proxy.errors import VpipeProxyError
from vpipe_proxy.routing import Router

EXIT_INVALID = 1
EXIT_USAGE = 2

EPILOG = """\
examples:
  vpipe serve -f examples/                 run the proxy locally on the built-in mock provider
  vpipe validate -f examples/providers/    check Pipelines and Routes, list every problem
  vpipe render -f examples/ > cm.yaml      the ConfigMap the operator would write (GitOps)
  vpipe explain -f examples/ --model gpt-4o-mini    which route takes a model, and why
  vpipe crds | kubectl apply -f -          install the Pipeline and Route CRDs
"""


def _resource_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", dest="paths", action="append", type=Path,
                        required=True, metavar="PATH",
                        help="YAML/JSON file or directory of Pipeline and Route resources "
                             "(repeatable; directories are not descended into, like kubectl -f)")
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace to render when the files span several")


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
    print()
    print(f"{'ROUTE':<24} {'PRIORITY':>8}  {'PIPELINE':<20} VERDICT")
    for v in router.explain(args.model, args.protocol, args.prefix, headers):
        mark = "*" if v.matched else " "
        print(f"{mark}{v.route:<23} {v.priority:>8}  {v.pipeline:<20} {v.reason}")
    return 0 if chosen else EXIT_INVALID


def cmd_serve(args: argparse.Namespace) -> int:
    from vpipe_proxy.kube_source import KubernetesConfigSource
    from vpipe_proxy.server import ProxyServer, run, run_until_signalled
    from vpipe_proxy.settings import Settings
    from vpipe_proxy.sources import ConfigSource, DocumentFileSource, ResourceFilesSource

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_environ(os.environ, host=args.host, port=args.port,
                                     admin_port=args.admin_port,
                                     wait_for_config=True if args.paths is None else None)
    source: ConfigSource
    if args.kubernetes:
        source = KubernetesConfigSource.from_environ(args.namespace, os.environ)
    elif args.config_dir is not None:
        source = DocumentFileSource(args.config_dir)
    else:
        source = ResourceFilesSource(args.paths, namespace=args.namespace)
    run(run_until_signalled(ProxyServer(settings, source)))
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    from vpipe_operator.crds import render_crds

    sys.stdout.write("---\n".join(render_crds().values()))
    return 0


COMMANDS = {"crds": cmd_crds, "serve": cmd_serve, "validate": cmd_validate, "render": cmd_render,
            "explain": cmd_explain}


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
