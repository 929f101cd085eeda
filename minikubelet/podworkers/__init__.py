"""Pod workers: one reconcile loop per pod, as the kubelet's pod_workers.go runs them.

workers.py decides when a pod's work runs; sync.py does one pass of it;
terminate.py stops containers and pods; runtime.py names what all of them use
of a container runtime.
"""

from minikubelet.podworkers.settings import WorkerSettings
from minikubelet.podworkers.workers import PodWorkers, pod_ref

__all__ = ["PodWorkers", "WorkerSettings", "pod_ref"]
