"""The fake DigitalOcean account the tests deploy into: its API tokens and the short-lived
Kubernetes token DigitalOcean issues for each of its clusters. Plain Python, no imports, so
that the fake doctl (a separate process, run once per credential) starts fast."""

# The account's personal access tokens: the one the tests export, and its rotated successor.
DO_TOKEN = "dop_v1_fake_account_token_for_tests"
ROTATED_DO_TOKEN = "dop_v1_fake_rotated_account_token_for_tests"
ACCOUNT_TOKENS = frozenset({DO_TOKEN, ROTATED_DO_TOKEN})
# A custom-scoped read-only token, as previews use (docs/security.md, "The preview token"): it may read the
# account's clusters but not fetch their credentials (no kubernetes:access_cluster scope).
PREVIEW_TOKEN = "dop_v1_fake_read_only_preview_token_for_tests"
# GET /v2/kubernetes/clusters/<id>/credentials issues a token valid for 7 days unless asked otherwise.
CLUSTER_TOKEN_SECONDS = 7 * 24 * 3600


def cluster_token(cluster_id: str) -> str:
    """The token exec-credential prints for a cluster; that cluster's API server accepts it."""
    return f"doks-exec-credential-token.{cluster_id}"
