"""A multi-region Linkerd mesh on DigitalOcean: config -> mesh -> stack outputs."""

import pulumi

from components.config import load_config
from components.cost import monthly_cost, report
from components.mesh import build_mesh

config = load_config()
# Computed, and held to costLimitMonthly, before anything is registered.
cost = monthly_cost(config, pulumi.get_project())
report(cost)
mesh = build_mesh(config)

pulumi.export("clusters", mesh.clusters)
pulumi.export("kubeconfigs", mesh.kubeconfigs)
pulumi.export("trustAnchorPem", mesh.trust_anchor_pem)
pulumi.export("issuerExpiry", mesh.issuer_expiry)
pulumi.export("issuerRenewBeforeHours", config.identity.issuer_renew_before_hours)
pulumi.export("gatewayAddresses", mesh.gateway_addresses)
pulumi.export("mirroredServices", mesh.mirrored_services)
pulumi.export("links", mesh.links)
pulumi.export("exports", mesh.exports)
pulumi.export("monthlyCost", cost)
