"""The clusters the program is given rather than creates, looked up before anything is registered:
an existing DOKS cluster (DigitalOcean says where it runs, on what, and how to reach it) and a
cluster in a kubeconfig (its API server is asked who it is). Each must exist and answer, and no
cluster may be listed twice under two names: that would install Linkerd into it twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import urllib3
from kubernetes import client as kube_api
from kubernetes.client.exceptions import ApiException

from components.cluster import doks_name
from components.config import AdoptedClusterSpec, KubeconfigClusterSpec, MeshConfig
from components.config import Problems  # reported exactly as config errors are
from components.doctl import DoctlError, LiveCluster, cluster_ca
from components.kube_client import KubeconfigError
from components.kubeconfigs import exec_kubeconfig, kubeconfig_reference
from components.live_read import REQUEST_TIMEOUT, look_client

# Every cluster has this namespace from its first start; its uid is the cluster's identity
# (it survives a new endpoint or new credentials, and a re-created cluster has another).
IDENTITY_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class GivenCluster:
    """What the program needs of a cluster it did not create."""

    identity: str  # the DOKS id, or the uid of kube-system
    # How the program reaches it, holding no credential: DigitalOcean's exec form, or a reference to
    # the kubeconfig file's context (components/kubeconfigs.py).
    kubeconfig: str
    endpoint: str
    ca_certificate: Optional[str]  # base64 PEM; None: the system's roots
    # An existing DOKS cluster's, as DigitalOcean has them.
    doks: Optional[LiveCluster] = None


class GivenClusterProblem(Exception):
    """The message says what is wrong with the cluster and what to do."""


def _adopted(spec: AdoptedClusterSpec, found: Optional[LiveCluster]) -> GivenCluster:
    """`found`: the cluster by its DOKS name or id (cluster_plan.find_doks_clusters); the CA, which
    that lookup leaves out, from the cluster's kubeconfig (kubernetes:access_cluster)."""
    if found is None:
        raise GivenClusterProblem(
            f"DigitalOcean has no Kubernetes cluster named {spec.existing_cluster!r} in this account "
            "(`doctl kubernetes cluster list` lists them); name an existing DOKS cluster by its name or id, or remove existingCluster to create one"
        )
    try:
        ca_certificate = cluster_ca(found.id)
    except DoctlError as error:
        raise GivenClusterProblem(
            f"this DigitalOcean token gets no kubeconfig for {found.name!r} ({error}): meshing an existing cluster needs its CA, "
            "which only a token with kubernetes:access_cluster reads (a read-only preview token has not)"
        ) from None
    kubeconfig = exec_kubeconfig(spec.name, found.id, found.endpoint, ca_certificate)
    return GivenCluster(identity=found.id, kubeconfig=kubeconfig, endpoint=found.endpoint, ca_certificate=ca_certificate, doks=found)


def _kubeconfig_identity(spec: KubeconfigClusterSpec) -> str:
    """Asks the context's API server for kube-system, with the context's own credentials."""
    where = f"the API server {spec.server} of context {spec.context!r} in {spec.kubeconfig}"
    try:
        namespace = kube_api.CoreV1Api(look_client(kubeconfig_reference(spec.kubeconfig, spec.context))).read_namespace(IDENTITY_NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
    except KubeconfigError as error:
        raise GivenClusterProblem(f"{error}") from None
    except ApiException as error:
        if error.status == 401:
            raise GivenClusterProblem(f"{where} refused the context's credentials (401): log in again (a token or certificate may have expired)") from None
        if error.status == 403:
            raise GivenClusterProblem(
                f"{where} does not let the context's user read namespace {IDENTITY_NAMESPACE} (403); the program installs cluster-wide "
                "objects (CRDs, webhooks, cluster roles), so the context needs cluster-admin"
            ) from None
        raise GivenClusterProblem(f"{where} answered {error.status} {error.reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise GivenClusterProblem(f"{where} did not answer ({type(error).__name__}): is the cluster running, and reachable from here?") from None
    return namespace.metadata.uid


def _given(spec: AdoptedClusterSpec | KubeconfigClusterSpec, found: Optional[LiveCluster]) -> GivenCluster:
    if isinstance(spec, AdoptedClusterSpec):
        return _adopted(spec, found)
    kubeconfig = kubeconfig_reference(spec.kubeconfig, spec.context)
    return GivenCluster(identity=_kubeconfig_identity(spec), kubeconfig=kubeconfig, endpoint=spec.server, ca_certificate=spec.ca_certificate)


def _key(spec: AdoptedClusterSpec | KubeconfigClusterSpec) -> str:
    return "existingCluster" if isinstance(spec, AdoptedClusterSpec) else "kubeconfig"


def _listed_twice(config: MeshConfig, given: Mapping[str, GivenCluster], problems: Problems) -> None:
    """One cluster under two names: the same DOKS id or kube-system uid, the same API server, or
    an existing cluster that is one this stack creates."""
    seen: dict[tuple[str, str], str] = {}
    for name in config.created_clusters():
        seen[("DOKS name", doks_name(pulumi.get_stack(), name))] = name
    for name, cluster in given.items():
        spec = config.clusters[name]
        marks = [("identity", cluster.identity), ("API server", cluster.endpoint.rstrip("/"))]
        if cluster.doks is not None:
            marks.append(("DOKS name", cluster.doks.name))
        twin = next(((what, seen[(what, value)]) for what, value in marks if (what, value) in seen), None)
        if twin:
            problems.add(f"clusters.{name}.{_key(spec)}", f"is the same cluster as clusters.{twin[1]} (the same {twin[0]}); list each cluster once, under one name")
            continue
        seen.update({mark: name for mark in marks})


def plan_given_clusters(config: MeshConfig, namespace: str, doks: Mapping[str, Optional[LiveCluster]]) -> dict[str, GivenCluster]:
    """Every adopted and kubeconfig cluster, looked up (`doks`: the DOKS clusters
    cluster_plan.find_doks_clusters found); one RunError with every problem otherwise."""
    problems = Problems(namespace)
    given: dict[str, GivenCluster] = {}
    for name, spec in config.clusters.items():
        if isinstance(spec, (AdoptedClusterSpec, KubeconfigClusterSpec)):
            try:
                given[name] = _given(spec, doks.get(name))
            except GivenClusterProblem as problem:
                problems.add(f"clusters.{name}.{_key(spec)}", str(problem))
    _listed_twice(config, given, problems)
    problems.raise_if_any()
    return given
