"""The Dockerfile (no Docker engine here, so it is parsed): multi-stage, slim Python 3.11, locked
dependencies installed like the tests' venv, non-root uid 65532 at runtime, ``rva`` entrypoint."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.testing import lockfile
from autoscaler.testing.manifests import OVERLAYS
from tests.deploy.conftest import REPO, requires_kubectl

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages:
            if instruction == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((instruction, rest.strip()))
    return args, stages


def test_multi_stage_on_slim_python_311() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    assert len(stages) >= 2
    for s in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", s.base), s.base
    final = stages[-1]
    assert any(a.startswith(f"--from={stages[0].name} ") for a in final.args("COPY")), "runtime copies the build"


def test_runtime_is_non_root_65532() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    final = stages[-1]
    users = final.args("USER")
    assert users and users[-1].split(":")[0] == "65532"
    assert all(u.split(":")[0] not in ("root", "0") for u in users)
    assert final.args("RUN") == [], "the runtime stage runs nothing as root; everything is built before"


def test_entrypoint_is_rva_and_default_command_matches_the_deployment() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    final = stages[-1]
    (entrypoint,) = final.args("ENTRYPOINT")
    assert json.loads(entrypoint) == ["rva"]
    (cmd,) = final.args("CMD")
    assert json.loads(cmd) == ["run"]


@requires_kubectl
def test_deployment_and_agent_use_the_image_commands() -> None:
    from autoscaler.testing.manifests import render

    objs = render("examples")
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][0] == "run"
    assert "command" not in deployment["spec"]["template"]["spec"]["containers"][0], "keep the image's ENTRYPOINT"
    rc = next(o for o in objs if o["kind"] == "RayCluster")
    agent = rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["initContainers"][0]
    assert agent["args"][0] == "agent" and "command" not in agent
    assert OVERLAYS["examples"].is_dir()


def test_dependencies_are_installed_from_the_lock_then_rva_without_resolution() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    build = stages[0]
    runs = build.args("RUN")
    lock_install = [r for r in runs if "-r requirements.lock" in r]
    assert lock_install and "--no-deps" in shlex.split(lock_install[0])
    self_install = [r for r in runs if re.search(r"pip install [^&]*--no-deps[^&]* \.(\s|$)", r)]
    assert self_install, "rva itself is installed with --no-deps after the lock"
    assert runs.index(lock_install[0]) < runs.index(self_install[0])
    assert any("pip check" in r for r in runs)
    copied = [a.split()[0] for a in build.args("COPY")]
    assert copied[0] == "requirements.lock", "the lock is copied first (layer cache)"


def test_lock_file_exists_and_matches_pyproject_and_the_test_venv() -> None:
    assert lockfile.LOCK.exists()
    assert lockfile.problems() == [], "run: python -m autoscaler.testing.lockfile"
    pins = lockfile.parse(lockfile.LOCK.read_text())
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), "every line pinned with =="


def test_lock_problems_are_detected(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    text = lockfile.LOCK.read_text()
    lock.write_text(re.sub(r"(?m)^aiohttp==.*\n", "", text))
    assert any("aiohttp" in p and "not locked" in p for p in lockfile.problems(lock))
    lock.write_text(re.sub(r"(?m)^ray==.*$", "ray==2.59.0", text))
    assert any(p.startswith("ray: locked 2.59.0") for p in lockfile.problems(lock))


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    allowed = {line[1:].strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    for stage in stages:
        for arg in stage.args("COPY"):
            if arg.startswith("--from"):
                continue
            *sources, _dest = arg.split()
            for src in sources:
                assert src.rstrip("/") in allowed, f"COPY {src} is excluded by .dockerignore"
