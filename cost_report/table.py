"""The `monthlyCost` output as a short text table."""

from __future__ import annotations

from typing import Any


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def format_table(cost: dict[str, Any]) -> str:
    rows = [("cluster", "item", "count", "unit/month", "month")]
    rows += [(i["cluster"], i["item"], str(i["count"]), money(i["unitMonthly"]), money(i["monthly"])) for i in cost["items"]]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = ["  ".join(cell.ljust(w) if column < 2 else cell.rjust(w) for column, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.append(f"total: {money(cost['totalMonthly'])} a month (about ${cost['totalHourly']:.4f} an hour), in {cost['currency']}")
    if cost.get("limitMonthly") is not None:
        lines.append(f"limit (costLimitMonthly): {money(cost['limitMonthly'])} a month")
    transfer = cost["outboundTransfer"]
    lines.append(f"plus outbound transfer at ${transfer['pricePerGiB']} per GiB ({transfer['source']}): {transfer['note']}")
    return "\n".join(lines)
