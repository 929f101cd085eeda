"""A small, faithful Kubernetes API server for the tests of cluster mode (issue 12).

No kube-apiserver can be installed on the machines the tests run on, so this package
keeps the API contract for the resources the agent and kubectl use: ``nodes`` (+status),
``pods`` (+status), ``namespaces`` (read-only: default, kube-system, kube-public,
kube-node-lease), ``coordination.k8s.io/v1`` ``leases`` and ``events`` (v1 and
events.k8s.io/v1), with discovery for kubectl.

Kept faithfully: one global resourceVersion stamped by every write (a no-op write stamps
none); 409 Conflict on a stale PUT or a patch whose metadata.uid/resourceVersion differ,
409 AlreadyExists, 404 (a missing namespace too), delete preconditions; the graceful
delete of a bound pod (deletionTimestamp, then a DELETE with grace 0 removes it);
merge, JSON and strategic merge patches, the last driven by the OpenAPI schema's patch
strategies (conditions merged by type, containerStatuses replaced whole, ``$patch``
directives); ``status`` subresources; list with label and field selectors; watch from a
resourceVersion with a bounded history (410 Expired beyond it), selector transitions and
timeoutSeconds; Table answers for kubectl; strict validation of every object stored
against the official schema (kubernetes-validate), with Time and MicroTime parsed as the
real decoder does (a MicroTime needs six fractional digits); bearer tokens and client
certificates over TLS, 401 without credentials. Refused objects are kept in ``rejected``.

Left out: admission, garbage collection (deleting a Node leaves its pods; ownerReferences
are only validated), finalizers, defaulting beyond a pod's phase and grace period, field
immutability rules, pagination (``limit``/``continue`` ignored), server-side apply,
bookmarks, protobuf, RBAC (any authenticated user may do anything).

For tests there are fault injection (``go_down``/``come_up``, ``fail_next``, ``latency``)
and a request log; ``RealCluster`` offers the same reads and acts on a real cluster.
"""

from tests.apiserver.real import RealCluster
from tests.apiserver.server import FakeApiServer, RequestRecord
from tests.apiserver.store import ApiError, Rejection

__all__ = ["ApiError", "FakeApiServer", "RealCluster", "Rejection", "RequestRecord"]
