"""The stack's monthly cost (components/cost.py): computed from the config with the droplet prices
of the fake sizes API (tests/fake_digitalocean.py, DROPLET_SIZES: the tests' own prices) and the
program's list prices; held to costLimitMonthly before anything is registered."""

from __future__ import annotations

import json
import re

import pulumi
import pytest

from components.config import ClusterSpec, CostSpec
from components.cost import BILLED_HOURS_PER_MONTH, LIST_PRICES, BilledCluster, DropletPrice, cost_items, droplet_prices, report
from tests.fake_account import PREVIEW_TOKEN
from tests.fake_cloud import FakeCloud
from tests.harness import PROJECT, run, run_main, stack_config
from tests.program import cost_of, full_mesh_config, seed_with

SIZES_INVOKE = "digitalocean:index/getSizes:getSizes"
LOAD_BALANCER = LIST_PRICES["loadBalancerMonthly"].amount
HA = LIST_PRICES["haControlPlaneMonthly"].amount


def items(cost: dict) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {(i["cluster"], i["item"]): (i["count"], i["unitMonthly"], i["monthly"]) for i in cost["items"]}


SEED_ITEMS = {
    ("west", "worker nodes s-8vcpu-16gb"): (3, 96.0, 288.0),
    ("west", "system node s-2vcpu-4gb"): (1, 24.0, 24.0),
    ("east", "worker nodes s-8vcpu-16gb"): (3, 96.0, 288.0),
    ("east", "system node s-2vcpu-4gb"): (1, 24.0, 24.0),
    ("east", "gateway load balancer"): (1, LOAD_BALANCER, LOAD_BALANCER),
}


# The totals the documentation states (README.md, What it costs), at the fake's prices.
@pytest.mark.parametrize(
    "config, monthly, hourly",
    [
        (stack_config("west-east"), 636.00, 0.9464),
        (stack_config("dev"), 156.00, 0.2321),
        # Three clusters of 3 x s-4vcpu-8gb, each linked to the other two: three gateways.
        (full_mesh_config(3), 540.00, 0.8036),
    ],
    ids=["seed", "dev", "3-region full mesh"],
)
def test_the_stacks_cost_what_the_documentation_states(config, monthly, hourly):
    cost = cost_of(config)
    assert (cost["totalMonthly"], cost["totalHourly"]) == (monthly, hourly)
    assert cost["totalMonthly"] == round(sum(i["monthly"] for i in cost["items"]), 2)


def test_each_item_gives_its_count_unit_price_subtotal_and_source():
    cost = cost_of(stack_config("west-east"))
    assert items(cost) == SEED_ITEMS
    sources = {i["item"].split(" s-")[0]: i["priceSource"] for i in cost["items"]}
    assert sources["worker nodes"] == sources["system node"] == "DigitalOcean sizes API (GET /v2/sizes), read at run time"
    assert sources["gateway load balancer"].startswith(LIST_PRICES["loadBalancerMonthly"].source)
    assert cost["limitMonthly"] is None and cost["currency"] == "USD"
    # Transfer depends on traffic: its price and source are stated, no amount is guessed.
    assert cost["outboundTransfer"]["pricePerGiB"] == 0.01 and "docs.digitalocean.com/products/billing/bandwidth" in cost["outboundTransfer"]["source"]
    assert not any("transfer" in i["item"] for i in cost["items"])


@pytest.mark.parametrize(
    "change, changed",
    [
        (dict(west={"nodeCount": 5}), {("west", "worker nodes s-8vcpu-16gb"): (5, 96.0, 480.0)}),
        (dict(west={"nodeSize": "s-4vcpu-8gb"}), {("west", "worker nodes s-8vcpu-16gb"): None, ("west", "worker nodes s-4vcpu-8gb"): (3, 48.0, 144.0)}),
        (dict(east={"controlPlaneHa": True}), {("east", "HA control plane"): (1, HA, HA)}),
    ],
    ids=["nodeCount", "nodeSize", "controlPlaneHa"],
)
def test_a_change_changes_exactly_its_items(change, changed):
    expected = {key: value for key, value in {**SEED_ITEMS, **changed}.items() if value is not None}
    assert items(cost_of(seed_with(**change))) == expected


def test_the_stack_config_overrides_the_list_prices_and_says_so():
    config = {**seed_with(east={"controlPlaneHa": True}), f"{PROJECT}:prices": json.dumps({"loadBalancerMonthly": 15, "haControlPlaneMonthly": 45.5})}
    cost = cost_of(config)
    by_item = {i["item"]: i for i in cost["items"] if i["cluster"] == "east"}
    assert by_item["gateway load balancer"]["monthly"] == 15 and by_item["HA control plane"]["monthly"] == 45.5
    assert by_item["gateway load balancer"]["priceSource"] == f"stack config {PROJECT}:prices.loadBalancerMonthly"
    assert cost["totalMonthly"] == 636 - LOAD_BALANCER + 15 + 45.5


def test_the_prices_come_from_the_sizes_api_at_run_time_in_one_lookup():
    fakes = FakeCloud()
    for size in fakes.digitalocean.sizes:
        size["price_monthly"], size["price_hourly"] = size["price_monthly"] * 2, size["price_hourly"] * 2
    cost = cost_of(full_mesh_config(3), fakes)
    assert cost["totalMonthly"] == 540 * 2 - 3 * LOAD_BALANCER
    (lookup,) = [args for token, args in fakes.invokes if token == SIZES_INVOKE]
    assert lookup["filters"] == [{"key": "slug", "values": ["s-2vcpu-4gb", "s-4vcpu-8gb"]}]


@pytest.mark.parametrize(
    "config, missing, key",
    [
        (seed_with(west={"nodeSize": "so-2vcpu-16gb"}), None, "clusters.west.nodeSize: DigitalOcean's sizes API does not list 'so-2vcpu-16gb'"),
        (stack_config("west-east"), "s-2vcpu-4gb", "clusters.west (the built-in pool, s-2vcpu-4gb): DigitalOcean's sizes API does not list 's-2vcpu-4gb'"),
    ],
    ids=["worker size", "system size"],
)
def test_a_size_the_api_does_not_list_is_a_clear_error_before_anything_is_registered(config, missing, key):
    fakes = FakeCloud()
    fakes.digitalocean.sizes = [size for size in fakes.digitalocean.sizes if size["slug"] != missing]
    with pytest.raises(pulumi.RunError, match="the stack's cost cannot be computed") as raised:
        run_main(fakes, config=config, replace_config=True)
    assert f"{PROJECT}:{key}" in str(raised.value)
    assert fakes.registered == []


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_a_stack_over_its_limit_fails_before_anything_is_registered_naming_total_and_limit(preview):
    fakes = FakeCloud()
    with pytest.raises(pulumi.RunError) as raised:
        run_main(fakes, config={f"{PROJECT}:costLimitMonthly": "600"}, preview=preview)
    assert f"this stack would cost $636.00 a month, over its limit {PROJECT}:costLimitMonthly $600.00" in str(raised.value)
    assert re.search(r"west +worker nodes s-8vcpu-16gb +3 +\$96\.00 +\$288\.00", str(raised.value)), "the error shows what the total is made of"
    assert fakes.registered == []


def test_a_stack_at_its_limit_deploys_and_outputs_its_cost_and_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MONTHLY_COST_FILE", str(tmp_path / "cost.json"))
    fakes = FakeCloud()
    result = run_main(fakes, config={f"{PROJECT}:costLimitMonthly": "636"})
    cost = result.outputs["monthlyCost"]
    assert (cost["totalMonthly"], cost["limitMonthly"]) == (636.0, 636)
    assert "monthlyCost" not in result.secret_outputs
    assert json.loads((tmp_path / "cost.json").read_text()) == cost
    assert [token for token, _ in fakes.invokes].count(SIZES_INVOKE) == 1, "one sizes lookup per run, not per cluster"


def test_a_preview_with_the_read_only_token_shows_the_cost_table(monkeypatch, caplog):
    """The preview token has kubernetes:read, which requires sizes:read (DigitalOcean's scopes reference)."""
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", PREVIEW_TOKEN)
    with caplog.at_level("INFO"):
        cost = cost_of(stack_config("west-east"), preview=True, stack="west-east")
        report(cost)
    assert cost["totalMonthly"] == 636.0
    assert "monthly cost:" in caplog.text and "total: $636.00 a month (about $0.9464 an hour)" in caplog.text


def test_a_token_without_sizes_read_cannot_price_the_stack(monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", "dop_v1_a_token_of_another_account")
    with pytest.raises(Exception, match="getSizes.*401"):
        cost_of(stack_config("west-east"))


def droplet(monthly: float) -> DropletPrice:
    return DropletPrice(monthly=monthly, hourly=monthly / BILLED_HOURS_PER_MONTH)


def _spec(name: str, **settings) -> ClusterSpec:
    return ClusterSpec(name=name, region="sfo3", node_size="s-8vcpu-16gb", node_count=3, **settings)


def test_a_cluster_the_program_does_not_create_counts_only_its_gateway_load_balancer_on_digitalocean():
    """The hook for given clusters: an adopted DOKS cluster bills only the gateway's load balancer
    the program makes; a kubeconfig cluster (k3d's servicelb, say) bills nothing to DigitalOcean."""
    clusters = [
        BilledCluster("made", created=_spec("made", control_plane_ha=True), gateway_load_balancer=False),
        BilledCluster("adopted", created=None, gateway_load_balancer=True),
        BilledCluster("local", created=None, gateway_load_balancer=False),
    ]
    prices = {"s-8vcpu-16gb": droplet(96.0), "s-2vcpu-4gb": droplet(24.0)}
    billed = {(i.cluster, i.item): i.monthly for i in cost_items(clusters, prices, CostSpec(), PROJECT)}
    assert billed == {
        ("made", "worker nodes s-8vcpu-16gb"): 288.0,
        ("made", "system node s-2vcpu-4gb"): 24.0,
        ("made", "HA control plane"): HA,
        ("adopted", "gateway load balancer"): LOAD_BALANCER,
    }


def test_no_sizes_no_lookup():
    fakes = FakeCloud()
    result = run(fakes, lambda: pulumi.export("prices", droplet_prices(set())))
    assert result.outputs["prices"] == {} and fakes.invokes == []


