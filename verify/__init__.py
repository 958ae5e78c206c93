"""Checks a live multi-cluster Linkerd mesh against the stack outputs of `pulumi up`.

`python -m verify` runs the checks (see `verify.checks`); `python -m verify.dashboard CLUSTER`
opens the viz dashboard of one cluster.
"""
