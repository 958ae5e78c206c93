"""The stack's `monthlyCost` output, shown to people: a table for the terminal and the pull-request
comment. Plain Python: CI and `make` run it without the Pulumi SDK."""
