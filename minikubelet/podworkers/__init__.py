"""Pod workers: one reconcile loop per pod, as the kubelet's pod_workers.go runs them."""

from minikubelet.podworkers.workers import PodWorkers, WorkerSettings, pod_ref

__all__ = ["PodWorkers", "WorkerSettings", "pod_ref"]
