"""What ``make mutate`` mutates: cosmic-ray's population, the deterministic sample, the keys.

- **Population**: every mutation ``cosmic-ray init`` finds in the modules of
  ``[thawproof-mutate.sample]``, less those inside a type annotation: every module of
  ``harness/lease`` has ``from __future__ import annotations``, so an annotation is
  never evaluated and such a mutant cannot change behaviour.
- **Sample**: per module, its mutation *sites* (source positions) are ranked by a hash
  of the seed and the site's own text (its function, its source line, its column in
  that line, and which of equal such sites it is), the first ``quota`` are taken, and
  at each the operator variant ranked first. The rank does not involve line numbers,
  so an edit elsewhere in a module leaves the other sites' choice alone; a mutant's
  ``id`` is derived the same way (it names a mutant in ``mutants-equivalent.toml``).
- **Key** of a result: the mutated module's content, the harness code outside
  ``harness/lease`` that the suite runs (with the suite's settings and pytest's), the
  operator, its occurrence and cosmic-ray's version. The same key means the same
  mutant run by the same suite, so its kept result stands.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "scripts" / "mutate.toml"
SUITE = "scripts/mutate_suite.py"
LEASE = "harness/lease"
TOOL_VERSION = "1"
"""Bumped when the way a result is obtained changes (every key changes with it)."""
OUTSIDE = (
    "harness",
    "scenarios",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/fixtures",
    "tests/chaos/__init__.py",
    "tests/chaos/test_machine.py",
    SUITE,
)
"""What the suite runs besides ``harness/lease`` (``harness/lease`` itself is left out)."""

Span = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Config:
    """``[thawproof-mutate]`` of ``scripts/mutate.toml``."""

    path: Path
    seed: str
    workers: int
    timeout: float
    goal: float
    sample: dict[str, int]
    suite: dict[str, Any]

    @classmethod
    def load(cls, path: Path = CONFIG) -> Config:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["thawproof-mutate"]
        return cls(
            path=path,
            seed=str(raw["seed"]),
            workers=int(raw["workers"]),
            timeout=float(raw["timeout"]),
            goal=float(raw["goal"]),
            sample={str(k): int(v) for k, v in raw["sample"].items()},
            suite=dict(raw["suite"]),
        )


def sha(*parts: str | bytes) -> str:
    """SHA-256 of the parts, each ended by a NUL (so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()


def cosmic_version() -> str:
    return version("cosmic-ray")


def tracked_files(root: Path, paths: Sequence[str]) -> list[str]:
    """Tracked and untracked-but-not-ignored files under ``paths``, as git sees them."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z", "--", *paths],
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def tree_hash(root: Path, files: Iterable[str]) -> str:
    """One hash over the files' names and contents."""
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def outside_hash(root: Path, cfg: Config) -> str:
    """The harness code outside ``harness/lease`` that the suite runs, and its settings."""
    files = [f for f in tracked_files(root, OUTSIDE) if not f.startswith(LEASE + "/")]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    pytest_ini = pyproject.get("tool", {}).get("pytest", {})
    return sha(
        tree_hash(root, files),
        json.dumps(cfg.suite, sort_keys=True),
        json.dumps(pytest_ini, sort_keys=True),
        TOOL_VERSION,
    )


def baseline_key(root: Path, outside: str) -> str:
    """The unmutated run's key: every file the suite reads, ``harness/lease`` included."""
    return sha("baseline", tree_hash(root, tracked_files(root, [LEASE])), outside)


# ----------------------------------------------------------------- sites


@dataclass(frozen=True)
class Mutant:
    """One sampled mutation: where, which operator, and the key its result is kept by."""

    id: str
    module: str
    operator: str
    occurrence: int
    line: int
    col: int
    code: str
    definition: str | None
    key: str


@dataclass
class Site:
    """One source position that some operators can mutate."""

    module: str
    line: int
    col: int
    code: str
    definition: str | None
    ident: str
    """Its name from its own text: module, function, stripped line, column in it, index."""
    variants: list[tuple[str, int, int]] = field(default_factory=list)
    """(operator, cosmic-ray occurrence, index among that operator's variants here)."""


def annotation_spans(source: str) -> list[Span]:
    """The (start, end) of every annotation in ``source``; none unless the module has
    ``from __future__ import annotations`` (otherwise annotations are evaluated)."""
    tree = ast.parse(source)
    future = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    if not future:
        return []
    nodes: list[ast.expr] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.returns is not None:
            nodes.append(n.returns)
        elif isinstance(n, ast.arg | ast.AnnAssign) and n.annotation is not None:
            nodes.append(n.annotation)
    return [((a.lineno, a.col_offset), (a.end_lineno or 0, a.end_col_offset or 0)) for a in nodes]


def in_spans(pos: tuple[int, int], spans: Sequence[Span]) -> bool:
    return any(start <= pos < end for start, end in spans)


def sites_of(source: str, module: str, specs: Iterable[Any]) -> list[Site]:
    """The module's mutation sites outside annotations (``specs``: cosmic-ray's
    MutationSpecs of this module), in source order."""
    lines = source.splitlines()
    spans = annotation_spans(source)
    by_pos: dict[tuple[int, int], Site] = {}
    seen: dict[str, int] = defaultdict(int)
    per_op_at: dict[tuple[tuple[int, int], str], int] = defaultdict(int)
    for spec in sorted(specs, key=lambda s: (tuple(s.start_pos), s.operator_name, s.occurrence)):
        pos = (int(spec.start_pos[0]), int(spec.start_pos[1]))
        if in_spans(pos, spans):
            continue
        site = by_pos.get(pos)
        if site is None:
            text = lines[pos[0] - 1]
            indent = len(text) - len(text.lstrip())
            base = f"{module}|{spec.definition_name}|{text.strip()}|{pos[1] - indent}"
            ident = f"{base}|{seen[base]}"
            seen[base] += 1
            site = Site(module, pos[0], pos[1], text.strip(), spec.definition_name, ident)
            by_pos[pos] = site
        index = per_op_at[(pos, spec.operator_name)]
        per_op_at[(pos, spec.operator_name)] += 1
        site.variants.append((spec.operator_name, int(spec.occurrence), index))
    return list(by_pos.values())


def choose(seed: str, sites: Sequence[Site], quota: int) -> list[tuple[Site, tuple[str, int, int]]]:
    """The first ``quota`` sites by rank, each with its first-ranked variant."""
    ranked = sorted(sites, key=lambda s: sha(seed, s.ident))
    return [
        (site, min(site.variants, key=lambda v: sha(seed, site.ident, v[0], str(v[2]))))
        for site in ranked[:quota]
    ]


def sample(root: Path, cfg: Config, specs: Iterable[Any], outside: str) -> list[Mutant]:
    """The deterministic sample over cosmic-ray's population ``specs``."""
    by_module: dict[str, list[Any]] = defaultdict(list)
    for s in specs:
        by_module[str(s.module_path)].append(s)
    chosen: list[Mutant] = []
    for module, quota in cfg.sample.items():
        raw = (root / module).read_bytes()
        sites = sites_of(raw.decode("utf-8"), module, by_module[module])
        for site, (op, occ, index) in choose(cfg.seed, sites, quota):
            key = sha("mutant", module, sha(raw), outside, op, str(occ), cosmic_version())
            ident = "m" + sha(site.ident, op, str(index))[:10]
            chosen.append(
                Mutant(ident, module, op, occ, site.line, site.col, site.code, site.definition, key)
            )
    return chosen


def site_counts(root: Path, cfg: Config, specs: Iterable[Any]) -> dict[str, int]:
    """How many sites each sampled module has (for the population-weighted estimate)."""
    by_module: dict[str, list[Any]] = defaultdict(list)
    for s in specs:
        by_module[str(s.module_path)].append(s)
    return {
        m: len(sites_of((root / m).read_text(encoding="utf-8"), m, by_module[m]))
        for m in cfg.sample
    }


# ----------------------------------------------------------------- cosmic-ray


def write_cosmic_config(
    path: Path, cfg: Config, *, urls: Sequence[str], python: str = sys.executable
) -> None:
    """The cosmic-ray configuration of a run (cosmic-ray reads only ``[cosmic-ray]``)."""
    lines = [
        "# written by scripts/mutate.py; the settings live in scripts/mutate.toml",
        "[cosmic-ray]",
        f"module-path = {json.dumps(list(cfg.sample))}",
        f"timeout = {cfg.timeout}",
        "excluded-modules = []",
        f"test-command = {json.dumps(f'{python} {SUITE}')}",
        "",
        "[cosmic-ray.distributor]",
        f'name = "{"http" if urls else "local"}"',
        "",
        "[cosmic-ray.distributor.http]",
        f"worker-urls = {json.dumps(list(urls))}",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def population(root: Path, cfg: Config, scratch: Path) -> list[Any]:
    """Every mutation ``cosmic-ray init`` finds in the sampled modules (MutationSpecs)."""
    from cosmic_ray.work_db import WorkDB, use_db

    conf, session = scratch / "init.toml", scratch / "population.sqlite"
    write_cosmic_config(conf, cfg, urls=[])
    subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", "init", str(conf), str(session)],
        cwd=root,
        check=True,
    )
    with use_db(str(session), WorkDB.Mode.open) as db:
        return [m for item in db.work_items for m in item.mutations]
