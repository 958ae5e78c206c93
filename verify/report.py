"""Renders check results like `linkerd check` does, or as JSON."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Iterable

from verify.checks import Result

PASS, FAIL = "√", "×"


def as_text(results: list[Result]) -> str:
    lines = []
    for group, members in groupby(results, key=lambda result: result.link.replace("->", " -> ") if result.link else "trust anchors"):
        lines += [group, "-" * len(group)]
        for result in members:
            lines.append(f"{PASS if result.ok else FAIL} {result.description}")
            if not result.ok:
                lines.append(f"    {result.hint}")
        lines.append("")
    ok = all_ok(results)
    lines.append(f"Status check results are {PASS if ok else FAIL}")
    return "\n".join(lines)


def as_json(results: list[Result]) -> str:
    checks = [
        {"cluster": r.cluster, "link": r.link, "name": r.name, "description": r.description, "ok": r.ok, "hint": r.hint}
        for r in results
    ]
    return json.dumps({"ok": all_ok(results), "checks": checks}, indent=2)


def all_ok(results: Iterable[Result]) -> bool:
    return all(result.ok for result in results)
