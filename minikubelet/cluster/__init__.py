"""Cluster mode: the node, its Lease and mirror pods on a Kubernetes API server.

Off unless ``kubeconfig`` is set. Everything here reports; nothing here decides
what runs on the node: the manifest directory stays the one source of pods, and
an API server that is down, slow or refusing only delays what it is told.

- ``api``: one connection to the API server through ``kubernetes_asyncio``
  (kubeconfig, TLS, credentials, the typed requests), its errors as ``ApiError``,
  its health and metrics.
- ``retry``: jittered back-off that honours ``Retry-After``.
- ``node``: registers the Node, patches its status, renews its Lease.
- ``mirror``: a mirror pod per static pod, created, replaced and deleted as the
  kubelet does, and each pod's status written to it, coalesced.
"""
