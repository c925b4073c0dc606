"""Render every dashboard to ``dashboards/rendered/<uid>.json``, or check the committed JSON.

    python -m dashboards.render            # (re)write the JSON files
    python -m dashboards.render --check    # exit 1, naming the files, if any differs

Output is deterministic: keys sorted, two-space indent, panel ids and grid
positions from the order of the sources, no timestamps or versions. Grafana
loads the rendered files through compose/grafana/provisioning/dashboards.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from dashboards import domain, overview, runtime, slo

RENDERED_DIR = Path(__file__).resolve().parent / "rendered"
BUILDERS: tuple[Callable[[], Dashboard], ...] = (
    overview.build,
    domain.build,
    slo.build,
    runtime.build,
)


def render(dashboard: Dashboard) -> str:
    data = dashboard.to_json_data()
    return json.dumps(data, cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def render_all() -> dict[str, str]:
    """File name (``<uid>.json``) to rendered JSON, for every dashboard."""
    rendered: dict[str, str] = {}
    for build in BUILDERS:
        dashboard = build()
        name = f"{dashboard.uid}.json"
        if name in rendered:
            raise ValueError(f"two dashboards share the uid {dashboard.uid!r}")
        rendered[name] = render(dashboard)
    return rendered


def differences(directory: Path = RENDERED_DIR) -> list[str]:
    """What differs between ``directory`` and a fresh render; empty when up to date."""
    fresh = render_all()
    problems = []
    for name, text in sorted(fresh.items()):
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from a fresh render")
    for path in sorted(directory.glob("*.json")):
        if path.name not in fresh:
            problems.append(f"{path}: no dashboard source renders it (stale)")
    return problems


def write(directory: Path = RENDERED_DIR) -> list[Path]:
    """Write every dashboard, remove stale JSON; return the files changed."""
    directory.mkdir(parents=True, exist_ok=True)
    fresh = render_all()
    changed = []
    for name, text in sorted(fresh.items()):
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for path in sorted(directory.glob("*.json")):
        if path.name not in fresh:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.render", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any file is stale"
    )
    parser.add_argument(
        "--dir", type=Path, default=RENDERED_DIR, help="where the JSON lives (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = differences(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m dashboards.render", file=sys.stderr)
            return 1
        print(f"{len(BUILDERS)} dashboards up to date in {args.dir}")
        return 0
    for path in write(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
