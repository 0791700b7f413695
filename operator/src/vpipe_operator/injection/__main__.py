"""`python -m vpipe_operator.injection`: the sidecar-injection webhook as its own process.

Settings come from `VPIPE_WEBHOOK_*` (see `settings`); API credentials as for the operator
(`KUBECONFIG`, else the pod's service account). SIGTERM/SIGINT stop it after
`VPIPE_WEBHOOK_SHUTDOWN_DELAY`. Exit codes: 0 after a stop, 2 for unusable settings,
credentials or certificate (the message names the variable or file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from vpipe_operator.credentials import Credentials, load_credentials
from vpipe_operator.errors import OperatorError
from vpipe_operator.injection.server import run_webhook
from vpipe_operator.injection.settings import WebhookSettings

PROG = "python -m vpipe_operator.injection"


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        print(f"usage: {PROG}\n\nThe vpipe sidecar-injection webhook. It takes no arguments: "
              "settings come from VPIPE_WEBHOOK_* variables (docs/install.md).",
              file=sys.stderr if args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args[0] in ("-h", "--help") else 2
    env = os.environ if environ is None else environ
    logging.basicConfig(level=env.get("VPIPE_WEBHOOK_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = WebhookSettings.from_environ(env)
        credentials = load_credentials(env)
        return asyncio.run(_serve(settings, credentials))
    except OperatorError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2


async def _serve(settings: WebhookSettings, credentials: Credentials) -> int:
    task = asyncio.create_task(run_webhook(settings, credentials))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):  # our own cancel, from the signal
        await task
    return 0


if __name__ == "__main__":
    sys.exit(main())
