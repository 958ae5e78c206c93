"""A Kubernetes API client from a kubeconfig given as text, for code that reads live clusters
outside the Pulumi provider (the waits during `pulumi up`, and `verify`)."""

from __future__ import annotations

from typing import Optional

import yaml
from kubernetes import client, config


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message never quotes it (it holds credentials)."""


def api_client(kubeconfig: str, retries: Optional[int] = None) -> client.ApiClient:
    """`retries` caps urllib3's retries per request (None: urllib3's default of 3)."""
    try:
        return config.new_client_from_config_dict(yaml.safe_load(kubeconfig), persist_config=False, client_configuration=client.Configuration(retries=retries))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    except (config.ConfigException, TypeError, AttributeError, KeyError) as err:
        raise KubeconfigError(f"the kubeconfig is incomplete ({type(err).__name__})") from None
