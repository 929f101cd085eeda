"""Typed ``Pod`` from a validated, defaulted Pod document.

Only called on documents that passed schema and semantic validation, so it
reads fields without re-checking them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minikubelet.model import naming
from minikubelet.model.quantity import parse_quantity, to_int, to_milli
from minikubelet.model.spec import (
    Container,
    ContainerPort,
    DNSConfig,
    DNSPolicy,
    EmptyDirSource,
    EnvVar,
    ExecAction,
    GRPCAction,
    Handler,
    HostAlias,
    HostPathSource,
    HTTPGetAction,
    Lifecycle,
    Pod,
    PodSecurityContext,
    PodSpec,
    PodUID,
    Probe,
    PullPolicy,
    Resources,
    RestartPolicy,
    SecurityContext,
    SleepAction,
    TCPSocketAction,
    Volume,
    VolumeMount,
    VolumeSource,
)


def _port(value: Any) -> int | str:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return int(value) if isinstance(value, int) else str(value)


def build_handler(handler: Mapping[str, Any]) -> Handler:
    if handler.get("exec") is not None:
        return ExecAction(command=tuple(handler["exec"].get("command") or ()))
    if handler.get("httpGet") is not None:
        h = handler["httpGet"]
        return HTTPGetAction(
            port=_port(h["port"]),
            path=h.get("path") or "/",
            host=h.get("host") or "",
            scheme=h.get("scheme") or "HTTP",
            headers=tuple((x["name"], x.get("value") or "") for x in h.get("httpHeaders") or ()),
        )
    if handler.get("tcpSocket") is not None:
        t = handler["tcpSocket"]
        return TCPSocketAction(port=_port(t["port"]), host=t.get("host") or "")
    if handler.get("grpc") is not None:
        g = handler["grpc"]
        return GRPCAction(port=int(g["port"]), service=g.get("service") or "")
    return SleepAction(seconds=int(handler["sleep"]["seconds"]))


def _probe(probe: Mapping[str, Any] | None) -> Probe | None:
    if probe is None:
        return None
    return Probe(
        handler=build_handler(probe),
        initial_delay_seconds=probe["initialDelaySeconds"],
        period_seconds=probe["periodSeconds"],
        timeout_seconds=probe["timeoutSeconds"],
        success_threshold=probe["successThreshold"],
        failure_threshold=probe["failureThreshold"],
        termination_grace_period_seconds=probe.get("terminationGracePeriodSeconds"),
    )


def _resources(resources: Mapping[str, Any]) -> Resources:
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}

    def cpu(section: Mapping[str, Any]) -> int | None:
        return to_milli(parse_quantity(section["cpu"])) if "cpu" in section else None

    def memory(section: Mapping[str, Any]) -> int | None:
        return to_int(parse_quantity(section["memory"])) if "memory" in section else None

    return Resources(
        cpu_limit_milli=cpu(limits),
        memory_limit=memory(limits),
        cpu_request_milli=cpu(requests),
        memory_request=memory(requests),
    )


def _security_context(sc: Mapping[str, Any] | None) -> SecurityContext:
    if not sc:
        return SecurityContext()
    caps = sc.get("capabilities") or {}
    return SecurityContext(
        run_as_user=sc.get("runAsUser"),
        run_as_group=sc.get("runAsGroup"),
        run_as_non_root=sc.get("runAsNonRoot"),
        privileged=bool(sc.get("privileged")),
        read_only_root_filesystem=bool(sc.get("readOnlyRootFilesystem")),
        allow_privilege_escalation=sc.get("allowPrivilegeEscalation"),
        capabilities_add=tuple(caps.get("add") or ()),
        capabilities_drop=tuple(caps.get("drop") or ()),
        seccomp_profile=(sc.get("seccompProfile") or {}).get("type"),
    )


def _env(var: Mapping[str, Any]) -> EnvVar:
    source = var.get("valueFrom") or {}
    if source.get("fieldRef") is not None:
        return EnvVar(name=var["name"], field_path=source["fieldRef"]["fieldPath"])
    if source.get("resourceFieldRef") is not None:
        ref = source["resourceFieldRef"]
        # Encoded as a pseudo field path; resolved against the pod's resources.
        divisor = ref.get("divisor") or "1"
        target = ref.get("containerName") or ""
        return EnvVar(name=var["name"], field_path=f"resource:{target}:{ref['resource']}:{divisor}")
    return EnvVar(name=var["name"], value=var.get("value") or "")


def build_container(ctr: Mapping[str, Any]) -> Container:
    lifecycle = ctr.get("lifecycle") or {}
    restart = ctr.get("restartPolicy")
    return Container(
        name=ctr["name"],
        image=ctr["image"],
        spec_hash=naming.container_spec_hash(ctr),
        image_pull_policy=PullPolicy(ctr["imagePullPolicy"]),
        command=tuple(ctr.get("command") or ()),
        args=tuple(ctr.get("args") or ()),
        working_dir=ctr.get("workingDir") or "",
        ports=tuple(
            ContainerPort(
                container_port=p["containerPort"],
                name=p.get("name") or "",
                host_port=p.get("hostPort") or 0,
                host_ip=p.get("hostIP") or "",
                protocol=p.get("protocol") or "TCP",
            )
            for p in ctr.get("ports") or ()
        ),
        env=tuple(_env(v) for v in ctr.get("env") or ()),
        resources=_resources(ctr.get("resources") or {}),
        volume_mounts=tuple(
            VolumeMount(
                name=m["name"],
                mount_path=m["mountPath"],
                read_only=bool(m.get("readOnly")),
                sub_path=m.get("subPath") or "",
                mount_propagation=m.get("mountPropagation") or "None",
            )
            for m in ctr.get("volumeMounts") or ()
        ),
        liveness_probe=_probe(ctr.get("livenessProbe")),
        readiness_probe=_probe(ctr.get("readinessProbe")),
        startup_probe=_probe(ctr.get("startupProbe")),
        lifecycle=Lifecycle(
            post_start=build_handler(lifecycle["postStart"])
            if lifecycle.get("postStart")
            else None,
            pre_stop=build_handler(lifecycle["preStop"]) if lifecycle.get("preStop") else None,
        ),
        termination_message_path=ctr["terminationMessagePath"],
        termination_message_policy=ctr["terminationMessagePolicy"],
        security_context=_security_context(ctr.get("securityContext")),
        stdin=bool(ctr.get("stdin")),
        stdin_once=bool(ctr.get("stdinOnce")),
        tty=bool(ctr.get("tty")),
        restart_policy=RestartPolicy(restart) if restart else None,
    )


def _volume(vol: Mapping[str, Any]) -> Volume:
    source: VolumeSource
    if vol.get("hostPath") is not None:
        source = HostPathSource(
            path=vol["hostPath"]["path"], type=vol["hostPath"].get("type") or ""
        )
    else:
        ed = vol.get("emptyDir") or {}
        limit = ed.get("sizeLimit")
        source = EmptyDirSource(
            medium=ed.get("medium") or "",
            size_limit=to_int(parse_quantity(limit)) if limit is not None else None,
        )
    return Volume(name=vol["name"], source=source)


def _pod_security_context(sc: Mapping[str, Any]) -> PodSecurityContext:
    return PodSecurityContext(
        run_as_user=sc.get("runAsUser"),
        run_as_group=sc.get("runAsGroup"),
        run_as_non_root=sc.get("runAsNonRoot"),
        fs_group=sc.get("fsGroup"),
        supplemental_groups=tuple(sc.get("supplementalGroups") or ()),
        sysctls=tuple((s["name"], str(s.get("value") or "")) for s in sc.get("sysctls") or ()),
        seccomp_profile=(sc.get("seccompProfile") or {}).get("type"),
    )


def _dns_config(dc: Mapping[str, Any] | None) -> DNSConfig | None:
    if dc is None:
        return None
    return DNSConfig(
        nameservers=tuple(dc.get("nameservers") or ()),
        searches=tuple(dc.get("searches") or ()),
        options=tuple(
            (o["name"], o.get("value")) for o in dc.get("options") or () if o.get("name")
        ),
    )


def build_pod(manifest: Mapping[str, Any], *, source: str, origin: str) -> Pod:
    meta = manifest["metadata"]
    spec = manifest["spec"]
    pod_spec = PodSpec(
        containers=tuple(build_container(c) for c in spec["containers"]),
        init_containers=tuple(build_container(c) for c in spec.get("initContainers") or ()),
        volumes=tuple(_volume(v) for v in spec.get("volumes") or ()),
        restart_policy=RestartPolicy(spec["restartPolicy"]),
        termination_grace_period_seconds=spec["terminationGracePeriodSeconds"],
        dns_policy=DNSPolicy(spec["dnsPolicy"]),
        dns_config=_dns_config(spec.get("dnsConfig")),
        host_network=bool(spec.get("hostNetwork")),
        host_pid=bool(spec.get("hostPID")),
        host_ipc=bool(spec.get("hostIPC")),
        share_process_namespace=bool(spec.get("shareProcessNamespace")),
        hostname=spec.get("hostname") or "",
        subdomain=spec.get("subdomain") or "",
        host_aliases=tuple(
            HostAlias(ip=a["ip"], hostnames=tuple(a.get("hostnames") or ()))
            for a in spec.get("hostAliases") or ()
        ),
        security_context=_pod_security_context(spec.get("securityContext") or {}),
        node_name=spec.get("nodeName") or "",
        readiness_gates=tuple(g["conditionType"] for g in spec.get("readinessGates") or ()),
    )
    return Pod(
        uid=PodUID(meta["uid"]),
        name=meta["name"],
        namespace=meta["namespace"],
        spec=pod_spec,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        source=source,
        origin=origin,
        manifest=manifest,
    )
