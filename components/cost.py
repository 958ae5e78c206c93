"""What the stack makes DigitalOcean bill a month, computed from the config before anything is
registered: droplet prices from DigitalOcean's sizes API at run time, the prices the API does not
serve from LIST_PRICES (or the stack's `prices`), and `costLimitMonthly` enforced."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_digitalocean as digitalocean

from components.config import SYSTEM_POOL_NODES, SYSTEM_POOL_SIZE, ClusterSpec, CostSpec, KubeconfigClusterSpec, MeshConfig
from cost_report.table import format_table

# DigitalOcean bills by the hour up to 672 hours (28 days) a month: a monthly price is 672 hourly
# ones (docs.digitalocean.com/products/kubernetes/details/pricing/, "Node Pools").
BILLED_HOURS_PER_MONTH = 672
SIZES_API = "DigitalOcean sizes API (GET /v2/sizes), read at run time"
# Where the program writes the stack's monthly cost as JSON when set: the pull-request preview
# reads it there (a preview stores no outputs).
COST_FILE_VARIABLE = "MONTHLY_COST_FILE"


@dataclass(frozen=True)
class ListPrice:
    """A price DigitalOcean's API does not serve: the figure, the page it is from, when it was read."""

    amount: float
    source: str
    read: str


# The one place for the prices the API does not serve; the stack's `prices` overrides the first two.
LIST_PRICES = {
    # The cloud controller manager makes a REGIONAL_NETWORK (network) load balancer for a LoadBalancer
    # Service unless annotated otherwise (digitalocean-cloud-controller-manager cloud.go): one node.
    # The figure is the one this project's docs always had; no page stating the network load balancer's price could be read
    # from where this was written, hence "unverified": check it, then set the date.
    "loadBalancerMonthly": ListPrice(12.00, "https://www.digitalocean.com/pricing/load-balancer (network load balancer, 1 node)", "unverified"),
    # "High availability (HA) for the control plane costs $40 per month, prorated hourly."
    "haControlPlaneMonthly": ListPrice(40.00, "https://docs.digitalocean.com/products/kubernetes/details/pricing/", "2026-12-03"),
    # Outbound transfer beyond the account's pooled allowance, per GiB: depends on traffic, so it is
    # stated beside the total and never added to it.
    "outboundTransferPerGiB": ListPrice(0.01, "https://docs.digitalocean.com/products/billing/bandwidth/", "2026-12-03"),
}


@dataclass(frozen=True)
class BilledCluster:
    """What one cluster of the config makes DigitalOcean bill through this program."""

    name: str
    # Its settings when the program creates it: then its node pools (and an HA control plane) are
    # billed. None for a cluster the program is given.
    created: Optional[ClusterSpec]
    # The program's multicluster gateway there is a LoadBalancer Service that DigitalOcean's CCM
    # serves with a billed load balancer: a DOKS cluster, created or adopted, that something links to.
    gateway_load_balancer: bool


def billed_clusters(config: MeshConfig) -> list[BilledCluster]:
    """Every cluster of the config, as billed: a created one in full; an adopted DOKS cluster only
    for the gateway's load balancer (the rest was billed before the program came); a cluster in a
    kubeconfig for nothing (DigitalOcean does not bill it through this program)."""
    gateways = set(config.gateway_clusters())
    return [
        BilledCluster(
            name,
            created=spec if isinstance(spec, ClusterSpec) else None,
            gateway_load_balancer=name in gateways and not isinstance(spec, KubeconfigClusterSpec),
        )
        for name, spec in config.clusters.items()
    ]


@dataclass(frozen=True)
class DropletPrice:
    monthly: float
    hourly: float


@dataclass(frozen=True)
class BilledItem:
    cluster: str
    item: str
    count: int
    unit_monthly: float
    unit_hourly: float
    source: str

    @property
    def monthly(self) -> float:
        return round(self.count * self.unit_monthly, 2)

    @property
    def hourly(self) -> float:
        return self.count * self.unit_hourly


def droplet_prices(sizes: set[str]) -> dict[str, DropletPrice]:
    """Each size's prices from the sizes API: one lookup for all of them, none when there are none."""
    if not sizes:
        return {}
    listed = digitalocean.get_sizes(filters=[{"key": "slug", "values": sorted(sizes)}]).sizes or []
    return {size.slug: DropletPrice(monthly=size.price_monthly, hourly=size.price_hourly) for size in listed}


def _fixed_price(key: str, override: Optional[float], namespace: str) -> tuple[float, str]:
    if override is not None:
        return override, f"stack config {namespace}:prices.{key}"
    price = LIST_PRICES[key]
    return price.amount, f"{price.source}, read {price.read}"


def cost_items(clusters: list[BilledCluster], droplets: Mapping[str, DropletPrice], spec: CostSpec, namespace: str) -> list[BilledItem]:
    """The billed items, per cluster; a size the sizes API does not list is a RunError naming its key."""
    load_balancer, load_balancer_source = _fixed_price("loadBalancerMonthly", spec.load_balancer_monthly, namespace)
    ha, ha_source = _fixed_price("haControlPlaneMonthly", spec.ha_control_plane_monthly, namespace)
    unlisted: list[str] = []
    items: list[BilledItem] = []

    def droplets_item(cluster: str, item: str, count: int, size: str, key: str) -> None:
        price = droplets.get(size)
        if price is None:
            unlisted.append(f"{namespace}:{key}: DigitalOcean's sizes API does not list {size!r} (not offered now); pick one `doctl kubernetes options sizes` lists")
            return
        items.append(BilledItem(cluster, f"{item} {size}", count, price.monthly, price.hourly, SIZES_API))

    for billed in clusters:
        name, spec = billed.name, billed.created
        if spec is not None:
            droplets_item(name, "worker nodes", spec.node_count, spec.node_size, f"clusters.{name}.nodeSize")
            droplets_item(name, "system node", SYSTEM_POOL_NODES, SYSTEM_POOL_SIZE, f"clusters.{name} (the built-in pool, {SYSTEM_POOL_SIZE})")
            if spec.control_plane_ha:
                items.append(BilledItem(name, "HA control plane", 1, ha, ha / BILLED_HOURS_PER_MONTH, ha_source))
        if billed.gateway_load_balancer:
            items.append(BilledItem(name, "gateway load balancer", 1, load_balancer, load_balancer / BILLED_HOURS_PER_MONTH, load_balancer_source))
    if unlisted:
        raise pulumi.RunError("the stack's cost cannot be computed:\n" + "\n".join(f"  - {problem}" for problem in unlisted))
    return items


def cost_output(items: list[BilledItem], limit: Optional[float]) -> dict[str, Any]:
    """The `monthlyCost` stack output: plain data, known in a preview."""
    transfer = LIST_PRICES["outboundTransferPerGiB"]
    return {
        "currency": "USD",
        "items": [
            {"cluster": i.cluster, "item": i.item, "count": i.count, "unitMonthly": i.unit_monthly, "unitHourly": round(i.unit_hourly, 5), "monthly": i.monthly, "priceSource": i.source}
            for i in items
        ],
        "totalMonthly": round(sum(i.monthly for i in items), 2),
        "totalHourly": round(sum(i.hourly for i in items), 4),
        "limitMonthly": limit,
        "outboundTransfer": {
            "pricePerGiB": transfer.amount,
            "source": f"{transfer.source}, read {transfer.read}",
            "note": "not in the total: traffic between regions leaves over the public network, and what exceeds the account's pooled droplet allowance is billed per GiB",
        },
    }


def monthly_cost(config: MeshConfig, namespace: str) -> dict[str, Any]:
    """The stack's monthly cost; a RunError, before anything is registered, when it is over
    `costLimitMonthly`."""
    clusters = billed_clusters(config)
    sizes = {size for billed in clusters if billed.created for size in (billed.created.node_size, SYSTEM_POOL_SIZE)}
    cost = cost_output(cost_items(clusters, droplet_prices(sizes), config.cost, namespace), config.cost.limit_monthly)
    limit = config.cost.limit_monthly
    if limit is not None and cost["totalMonthly"] > limit:
        raise pulumi.RunError(
            f"this stack would cost ${cost['totalMonthly']:,.2f} a month, over its limit {namespace}:costLimitMonthly "
            f"${limit:,.2f}; nothing was created or changed. Reduce the stack, or raise the limit:\n{format_table(cost)}"
        )
    return cost


def report(cost: dict[str, Any]) -> None:
    """Shows the cost in a preview's diagnostics (a preview stores no outputs), and writes it where
    MONTHLY_COST_FILE says, for the pull-request comment."""
    if pulumi.runtime.is_dry_run():
        pulumi.log.info(f"monthly cost:\n{format_table(cost)}")
    path = os.environ.get(COST_FILE_VARIABLE)
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(cost, file)
