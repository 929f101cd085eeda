"""Fixed API objects for the client's formatters, shaped as the agent serves them."""

from __future__ import annotations

from typing import Any

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z
CREATED = "2026-09-21T14:03:20Z"  # NOW - 10m
STARTED = "2026-09-21T14:03:21Z"


def web_pod() -> dict[str, Any]:
    """A running pod with an init container, two app containers and most describe fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-node1",
            "namespace": "default",
            "uid": "0f3c2a",
            "creationTimestamp": CREATED,
            "labels": {"app": "web", "tier": "front"},
            "annotations": {
                "kubernetes.io/config.hash": "0f3c2a",
                "kubernetes.io/config.seen": "2026-09-21T14:03:20.123456789Z",
                "kubernetes.io/config.source": "file",
                "note": "x" * 150,
            },
        },
        "spec": {
            "nodeName": "node1",
            "priority": 0,
            "initContainers": [
                {"name": "setup", "image": "busybox:1", "command": ["sh", "-c", "true"]}
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1",
                    "command": ["sh", "-c"],
                    "args": ["httpd -f -p 8080\necho done"],
                    "ports": [
                        {"containerPort": 8080, "protocol": "TCP"},
                        {"containerPort": 9090, "protocol": "UDP", "hostPort": 9090},
                    ],
                    "resources": {
                        "limits": {"memory": "64Mi", "cpu": "500m"},
                        "requests": {"cpu": "250m", "memory": "32Mi"},
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "initialDelaySeconds": 3,
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "readinessProbe": {
                        "exec": {"command": ["cat", "/tmp/ready"]},
                        "timeoutSeconds": 1,
                        "periodSeconds": 5,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "MULTI", "value": "one\ntwo"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                            },
                        },
                        {
                            "name": "NODE",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
                            },
                        },
                        {
                            "name": "MEM",
                            "valueFrom": {
                                "resourceFieldRef": {
                                    "resource": "limits.memory",
                                    "divisor": "1Mi",
                                }
                            },
                        },
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        },
                    ],
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {
                            "name": "conf",
                            "mountPath": "/etc/app",
                            "readOnly": True,
                            "subPath": "app",
                        },
                    ],
                },
                {
                    "name": "sidecar",
                    "image": "busybox:1",
                    "ports": [{"containerPort": 8081, "protocol": "TCP"}],
                    "readinessProbe": {
                        "tcpSocket": {"port": 8081},
                        "timeoutSeconds": 1,
                        "periodSeconds": 10,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                },
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "conf", "hostPath": {"path": "/etc/conf", "type": "Directory"}},
            ],
            "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.168.1.5",
            "podIP": "10.217.0.7",
            "podIPs": [{"ip": "10.217.0.7"}],
            "startTime": CREATED,
            "qosClass": "Burstable",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False"},
                {"type": "ContainersReady", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "initContainerStatuses": [
                {
                    "name": "setup",
                    "ready": True,
                    "restartCount": 0,
                    "image": "busybox:1",
                    "imageID": "docker-pullable://busybox@sha256:aa",
                    "containerID": "docker://1111",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": STARTED,
                            "finishedAt": STARTED,
                        }
                    },
                }
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "started": True,
                    "restartCount": 2,
                    "image": "busybox:1",
                    "imageID": "docker-pullable://busybox@sha256:aa",
                    "containerID": "docker://2222",
                    "state": {"running": {"startedAt": "2026-09-21T14:08:20Z"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "Error",
                            "startedAt": STARTED,
                            "finishedAt": "2026-09-21T14:08:19Z",
                        }
                    },
                },
                {
                    "name": "sidecar",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "image": "busybox:1",
                    "imageID": "",
                    "containerID": "",
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                },
            ],
        },
    }


def event(
    reason: str, message: str, *, count: int = 1, kind: str = "Normal", **more: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"web-node1.{reason.lower()}", "namespace": "default"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "default",
            "name": "web-node1",
            "uid": "0f3c2a",
            "apiVersion": "v1",
            **more,
        },
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": "node1"},
        "firstTimestamp": CREATED,
        "lastTimestamp": "2026-09-21T14:12:20Z" if count > 1 else CREATED,
        "count": count,
        "type": kind,
    }


def web_events() -> list[dict[str, Any]]:
    return [
        event("BackOff", "Back-off restarting failed container app", count=3, kind="Warning"),
        event("Pulled", 'Container image "busybox:1" already present on machine'),
        event("Started", "Started container app "),
    ]
