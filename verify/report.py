"""Renders check results like `linkerd check` does (√ passed, × failed, ‼ warning), or as JSON."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Iterable

from verify.checks import Result

PASS, FAIL, WARN = "√", "×", "‼"


def _group(result: Result) -> str:
    return result.link.replace("->", " -> ") if result.link else f"cluster {result.cluster}"


def _mark(result: Result) -> str:
    return PASS if result.ok else WARN if result.warning else FAIL


def as_text(results: list[Result]) -> str:
    lines = []
    for group, members in groupby(results, key=_group):
        lines += [group, "-" * len(group)]
        for result in members:
            lines.append(f"{_mark(result)} {result.description}")
            if not result.ok:
                lines.append(f"    {result.hint}")
        lines.append("")
    lines.append(f"Status check results are {PASS if all_ok(results) else FAIL}")
    return "\n".join(lines)


def as_json(results: list[Result]) -> str:
    checks = [
        {"cluster": r.cluster, "link": r.link, "name": r.name, "description": r.description, "ok": r.ok, "warning": r.warning, "hint": r.hint}
        for r in results
    ]
    return json.dumps({"ok": all_ok(results), "checks": checks}, indent=2)


def all_ok(results: Iterable[Result]) -> bool:
    """Warnings do not fail the run, as in `linkerd check`."""
    return all(result.ok or result.warning for result in results)
