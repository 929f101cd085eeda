"""Typed ``Pod`` from a validated, defaulted Pod document.

Only called on documents that passed the schema and every semantic rule and
went through ``defaults``, so it reads fields without re-checking them: a
field with an API default is read as defaulted (``h["scheme"]``), never with
a fallback of its own. A field without one that is absent is its Go zero
value (``""``, ``0``, ``False``, or ``None`` for pointers), read through the
typed getters of ``access``; where the kubelet gives an absent pointer a
meaning (a mount's propagation, a divisor), that is said where it is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minikubelet.model import naming
from minikubelet.model.access import (
    get_bool,
    get_int,
    get_list,
    get_map,
    get_maps,
    get_opt_str,
    get_str,
    is_true,
)
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
    # Validation admits ASCII digit strings of at most 5 characters as numbers.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return int(value) if isinstance(value, int) else str(value)


def _strs(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(v) for v in get_list(obj, key))


def build_handler(handler: Mapping[str, Any]) -> Handler:
    """A probe's or hook's handler; also reads the ones kept in container labels."""
    if "exec" in handler:
        return ExecAction(command=_strs(handler["exec"], "command"))
    if "httpGet" in handler:
        h = handler["httpGet"]
        return HTTPGetAction(
            port=_port(h["port"]),
            path=h["path"],
            host=get_str(h, "host"),
            scheme=h["scheme"],
            headers=tuple(
                (get_str(x, "name"), get_str(x, "value")) for _, x in get_maps(h, "httpHeaders")
            ),
        )
    if "tcpSocket" in handler:
        t = handler["tcpSocket"]
        return TCPSocketAction(port=_port(t["port"]), host=get_str(t, "host"))
    if "grpc" in handler:
        g = handler["grpc"]
        return GRPCAction(port=int(g["port"]), service=g["service"])
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
        termination_grace_period_seconds=get_int(probe, "terminationGracePeriodSeconds"),
    )


def _resources(resources: Mapping[str, Any]) -> Resources:
    limits = get_map(resources, "limits")
    requests = get_map(resources, "requests")

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


def _security_context(sc: Mapping[str, Any]) -> SecurityContext:
    caps = get_map(sc, "capabilities")
    return SecurityContext(
        run_as_user=get_int(sc, "runAsUser"),
        run_as_group=get_int(sc, "runAsGroup"),
        run_as_non_root=get_bool(sc, "runAsNonRoot"),
        privileged=is_true(sc, "privileged"),
        read_only_root_filesystem=is_true(sc, "readOnlyRootFilesystem"),
        allow_privilege_escalation=get_bool(sc, "allowPrivilegeEscalation"),
        capabilities_add=_strs(caps, "add"),
        capabilities_drop=_strs(caps, "drop"),
        seccomp_profile=get_opt_str(get_map(sc, "seccompProfile"), "type"),
    )


def _env(var: Mapping[str, Any]) -> EnvVar:
    source = get_map(var, "valueFrom")
    if "fieldRef" in source:
        return EnvVar(name=var["name"], field_path=source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"]
        # No divisor means 1, as the kubelet reads it. Encoded as a pseudo
        # field path, resolved against the pod's resources.
        divisor = ref.get("divisor", "1")
        target = get_str(ref, "containerName")
        return EnvVar(name=var["name"], field_path=f"resource:{target}:{ref['resource']}:{divisor}")
    return EnvVar(name=var["name"], value=get_str(var, "value"))


def build_container(ctr: Mapping[str, Any]) -> Container:
    lifecycle = get_map(ctr, "lifecycle")
    restart = get_opt_str(ctr, "restartPolicy")
    return Container(
        name=ctr["name"],
        image=ctr["image"],
        spec_hash=naming.container_spec_hash(ctr),
        image_pull_policy=PullPolicy(ctr["imagePullPolicy"]),
        command=_strs(ctr, "command"),
        args=_strs(ctr, "args"),
        working_dir=get_str(ctr, "workingDir"),
        ports=tuple(
            ContainerPort(
                container_port=p["containerPort"],
                name=get_str(p, "name"),
                host_port=get_int(p, "hostPort") or 0,
                host_ip=get_str(p, "hostIP"),
                protocol=p["protocol"],
            )
            for _, p in get_maps(ctr, "ports")
        ),
        env=tuple(_env(v) for _, v in get_maps(ctr, "env")),
        resources=_resources(ctr["resources"]),
        volume_mounts=tuple(
            VolumeMount(
                name=m["name"],
                mount_path=m["mountPath"],
                read_only=is_true(m, "readOnly"),
                sub_path=get_str(m, "subPath"),
                # No propagation means private, which the runtime calls "None".
                mount_propagation=get_opt_str(m, "mountPropagation") or "None",
            )
            for _, m in get_maps(ctr, "volumeMounts")
        ),
        liveness_probe=_probe(ctr.get("livenessProbe")),
        readiness_probe=_probe(ctr.get("readinessProbe")),
        startup_probe=_probe(ctr.get("startupProbe")),
        lifecycle=Lifecycle(
            post_start=build_handler(lifecycle["postStart"]) if "postStart" in lifecycle else None,
            pre_stop=build_handler(lifecycle["preStop"]) if "preStop" in lifecycle else None,
        ),
        termination_message_path=ctr["terminationMessagePath"],
        termination_message_policy=ctr["terminationMessagePolicy"],
        security_context=_security_context(get_map(ctr, "securityContext")),
        stdin=is_true(ctr, "stdin"),
        stdin_once=is_true(ctr, "stdinOnce"),
        tty=is_true(ctr, "tty"),
        restart_policy=RestartPolicy(restart) if restart is not None else None,
    )


def _volume(vol: Mapping[str, Any]) -> Volume:
    source: VolumeSource
    if "hostPath" in vol:
        source = HostPathSource(path=vol["hostPath"]["path"], type=vol["hostPath"]["type"])
    else:
        # Validation admits only emptyDir and hostPath; defaults made a bare volume emptyDir.
        ed = vol["emptyDir"]
        limit = ed.get("sizeLimit")
        source = EmptyDirSource(
            medium=get_str(ed, "medium"),
            size_limit=to_int(parse_quantity(limit)) if limit is not None else None,
        )
    return Volume(name=vol["name"], source=source)


def _pod_security_context(sc: Mapping[str, Any]) -> PodSecurityContext:
    return PodSecurityContext(
        run_as_user=get_int(sc, "runAsUser"),
        run_as_group=get_int(sc, "runAsGroup"),
        run_as_non_root=get_bool(sc, "runAsNonRoot"),
        fs_group=get_int(sc, "fsGroup"),
        supplemental_groups=tuple(
            g for g in get_list(sc, "supplementalGroups") if isinstance(g, int)
        ),
        sysctls=tuple((s["name"], s["value"]) for _, s in get_maps(sc, "sysctls")),
        seccomp_profile=get_opt_str(get_map(sc, "seccompProfile"), "type"),
    )


def _dns_config(dc: Mapping[str, Any] | None) -> DNSConfig | None:
    if dc is None:
        return None
    return DNSConfig(
        nameservers=_strs(dc, "nameservers"),
        searches=_strs(dc, "searches"),
        options=tuple(
            (get_str(o, "name"), get_opt_str(o, "value"))
            for _, o in get_maps(dc, "options")
            if get_str(o, "name")
        ),
    )


def build_pod(manifest: Mapping[str, Any], *, source: str, origin: str) -> Pod:
    meta = manifest["metadata"]
    spec = manifest["spec"]
    pod_spec = PodSpec(
        containers=tuple(build_container(c) for c in spec["containers"]),
        init_containers=tuple(build_container(c) for _, c in get_maps(spec, "initContainers")),
        volumes=tuple(_volume(v) for _, v in get_maps(spec, "volumes")),
        restart_policy=RestartPolicy(spec["restartPolicy"]),
        termination_grace_period_seconds=spec["terminationGracePeriodSeconds"],
        dns_policy=DNSPolicy(spec["dnsPolicy"]),
        dns_config=_dns_config(spec.get("dnsConfig")),
        host_network=is_true(spec, "hostNetwork"),
        host_pid=is_true(spec, "hostPID"),
        host_ipc=is_true(spec, "hostIPC"),
        share_process_namespace=is_true(spec, "shareProcessNamespace"),
        hostname=get_str(spec, "hostname"),
        subdomain=get_str(spec, "subdomain"),
        host_aliases=tuple(
            HostAlias(ip=a["ip"], hostnames=_strs(a, "hostnames"))
            for _, a in get_maps(spec, "hostAliases")
        ),
        security_context=_pod_security_context(spec["securityContext"]),
        node_name=spec["nodeName"],
        readiness_gates=tuple(g["conditionType"] for _, g in get_maps(spec, "readinessGates")),
    )
    return Pod(
        uid=PodUID(meta["uid"]),
        name=meta["name"],
        namespace=meta["namespace"],
        spec=pod_spec,
        labels=dict(get_map(meta, "labels")),
        annotations=dict(meta["annotations"]),
        source=source,
        origin=origin,
        manifest=manifest,
    )
