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
# The token of another account, as a `doctl auth init --context <name>` would have stored it.
OTHER_ACCOUNT_TOKEN = "dop_v1_fake_token_of_another_account"
# GET /v2/kubernetes/clusters/<id>/credentials issues a token valid for 7 days unless asked otherwise.
CLUSTER_TOKEN_SECONDS = 7 * 24 * 3600


CLUSTER_TOKEN_PREFIX = "doks-exec-credential-token."


def cluster_token(cluster_id: str, serial: str) -> str:
    """A token DigitalOcean issues for a cluster (each fetch a new one, told apart by `serial`)."""
    return f"{CLUSTER_TOKEN_PREFIX}{cluster_id}.{serial}"


def is_cluster_token(cluster_id: str, token: str) -> bool:
    """Whether DigitalOcean issued `token` for this cluster; whether it has expired is the API server's to say."""
    return token.startswith(f"{CLUSTER_TOKEN_PREFIX}{cluster_id}.")
