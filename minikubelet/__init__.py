"""minikubelet: Kubernetes static pods on the local Docker engine."""

__version__ = "0.1.0"
