"""Config sources: where a proxy gets its config document from, and how it notices changes.

- `DocumentFileSource` reads a rendered document from a mounted ConfigMap directory (or a file);
  it follows Kubernetes' atomic `..data` symlink swap.
- `ResourceFilesSource` reads Pipeline/Route YAML and renders in process (local mode).

Change detection is a cheap fingerprint (stat and symlink targets) polled by the reloader;
loading happens only when the fingerprint moves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vpipe_api.document import CONFIGMAP_KEY, ConfigDocument, parse_document
from vpipe_api.loading import load_resources, resource_files
from vpipe_api.render import render
from vpipe_proxy.errors import ConfigLoadError

if TYPE_CHECKING:
    from vpipe_proxy.supervise import Supervisor

Fingerprint = tuple[object, ...]


class ConfigSource(Protocol):
    """Somewhere a config document comes from."""

    description: str

    @property
    def changed(self) -> asyncio.Event | None:
        """Set by sources that are told about changes (API watch); None for polled ones."""
        ...

    async def start(self, supervisor: Supervisor) -> None:
        """Prepare before the first load; long-lived work (a watch) runs under `supervisor`."""
        ...

    async def close(self) -> None:
        ...

    def fingerprint(self) -> Fingerprint:
        """Changes whenever the source's content may have changed."""
        ...

    def load(self) -> ConfigDocument:
        """The current document; raises a VpipeApiError or ConfigLoadError when unusable."""
        ...


def _stat(path: Path) -> tuple[object, ...]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


class _Polled:
    """File sources learn of changes by polling; nothing to start or stop."""

    changed: asyncio.Event | None = None

    async def start(self, supervisor: Supervisor) -> None:
        return None

    async def close(self) -> None:
        return None


class DocumentFileSource(_Polled):
    """A rendered document: `<dir>/config.json` of a mounted ConfigMap, or a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path / CONFIGMAP_KEY if path.is_dir() else path
        self.description = f"config document {self.file}"

    def fingerprint(self) -> Fingerprint:
        data_link = self.path / "..data"
        try:
            target: str | None = os.readlink(data_link)
        except OSError:
            target = None
        return (target, _stat(self.file))

    def load(self) -> ConfigDocument:
        try:
            raw = self.file.read_bytes()
        except OSError as e:
            raise ConfigLoadError(f"cannot read {self.file}: {e.strerror}") from e
        return parse_document(raw)


class ResourceFilesSource(_Polled):
    """Pipeline and Route YAML files, rendered in process (local mode)."""

    def __init__(self, paths: Sequence[Path], namespace: str | None = None) -> None:
        self.paths = list(paths)
        self.namespace = namespace
        self.description = "resources in " + ", ".join(str(p) for p in self.paths)

    def fingerprint(self) -> Fingerprint:
        try:
            files = resource_files(self.paths)
        except Exception as e:  # a vanished path is a change the load will report
            return (repr(e),)
        return tuple(_stat(f) for f in files) + tuple(_stat(p) for p in self.paths)

    def load(self) -> ConfigDocument:
        resources = load_resources(self.paths)
        return render(resources.pipelines, resources.routes, namespace=self.namespace)
