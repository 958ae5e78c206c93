"""The pull-request comment on a stack's cost: what it costs now (its deployed outputs), what it
will cost after the change (the preview's figure), and the difference, per item and in total.
One comment per stack, edited in place on each push."""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Optional

from cost_report.table import money

MARKER = "<!-- monthly-cost:{stack} -->"


def _signed(amount: float) -> str:
    if round(amount, 2) == 0:
        return "±$0.00"
    return f"+{money(amount)}" if amount > 0 else f"-{money(-amount)}"


def _by_item(cost: Optional[dict]) -> dict[tuple[str, str], dict]:
    return {(i["cluster"], i["item"]): i for i in (cost or {}).get("items", [])}


def comment_body(stack: str, current_outputs: dict[str, Any], after: dict[str, Any]) -> str:
    """`current_outputs`: the stack's outputs as `pulumi stack output --json` gives them ({} for a
    stack never deployed); `after`: the `monthlyCost` the preview computed."""
    current = current_outputs.get("monthlyCost")
    now = money(current["totalMonthly"]) if current else "new (not deployed yet)"
    difference = _signed(after["totalMonthly"] - current["totalMonthly"]) if current else _signed(after["totalMonthly"])
    lines = [
        MARKER.format(stack=stack),
        f"#### Monthly cost of `{stack}` (USD)",
        "",
        "| now | after this change | difference |",
        "| ---: | ---: | ---: |",
        f"| {now} | {money(after['totalMonthly'])} | {difference} |",
        "",
    ]
    if after.get("limitMonthly") is not None:
        lines += [f"Limit (`costLimitMonthly`): {money(after['limitMonthly'])} a month.", ""]
    before_items, after_items = _by_item(current), _by_item(after)
    lines += ["| cluster | item | count | unit | month | change |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for key in [*after_items, *(key for key in before_items if key not in after_items)]:
        new, old = after_items.get(key), before_items.get(key)
        shown = new or old
        count = str(new["count"]) if new else "removed"
        month = money(new["monthly"]) if new else money(0)
        change = _signed((new["monthly"] if new else 0) - (old["monthly"] if old else 0))
        lines.append(f"| {shown['cluster']} | {shown['item']} | {count} | {money(shown['unitMonthly'])} | {month} | {change} |")
    transfer = after["outboundTransfer"]
    lines += ["", f"Not included: outbound transfer at ${transfer['pricePerGiB']} per GiB ({transfer['source']}); {transfer['note']}."]
    return "\n".join(lines) + "\n"


def _request(method: str, url: str, token: str, body: Optional[dict] = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def post_comment(body: str, stack: str, *, api: str, repository: str, pull_request: int, token: str) -> str:
    """Edits this stack's earlier comment on the pull request, or adds one; returns its URL.
    GitHub REST: GET/POST /repos/{repo}/issues/{number}/comments (pages of at most 100),
    PATCH /repos/{repo}/issues/comments/{id}."""
    marker = MARKER.format(stack=stack)
    comments = f"{api}/repos/{repository}/issues/{pull_request}/comments"
    page = 1
    while True:
        listed = _request("GET", f"{comments}?per_page=100&page={page}", token)
        earlier = next((c for c in listed if c["body"].startswith(marker)), None)
        if earlier is not None:
            return _request("PATCH", f"{api}/repos/{repository}/issues/comments/{earlier['id']}", token, {"body": body})["html_url"]
        if len(listed) < 100:
            return _request("POST", comments, token, {"body": body})["html_url"]
        page += 1
