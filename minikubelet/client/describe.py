"""``kubectl describe pod``, computed from the pod and its events; a pure formatter.

The layout is kubectl's (``pkg/describe``): lines written with a two-space
indent per level through one Go tabwriter (minimum width 0, padding 2), so the
``Field:\\tvalue`` columns line up exactly as kubectl's do. Times are printed
in the local zone in RFC 1123 form with a numeric offset, as kubectl does.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from minikubelet.client.printing import event_interval, event_time, parse_time
from minikubelet.client.tabwriter import tabulate

Obj = Mapping[str, Any]
MAX_ANNOTATION_LEN = 140
# Annotations kubectl leaves out of descriptions.
SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


class _Writer:
    """kubectl's ``PrefixWriter``: each write starts with two spaces per level."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def text(self) -> str:
        return tabulate("".join(self.parts), minwidth=0, padding=2)


def rfc1123z(value: object) -> str:
    ts = parse_time(value)
    if ts is None:
        # Go formats its zero time when the field is absent.
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    return datetime.datetime.fromtimestamp(ts).astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def _bool(value: object) -> str:
    return "True" if value else "False"


def _go_list(items: Sequence[object]) -> str:
    """A string slice as Go's ``%v`` prints it."""
    return "[" + " ".join(str(i) for i in items) + "]"


def _labels(w: _Writer, title: str, labels: Mapping[str, str] | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(labels or {})
    if not keys:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(keys):
        w.write(0, ("\t" if i else "") + f"{key}={(labels or {})[key]}\n")


def _annotations(w: _Writer, title: str, annotations: Mapping[str, str] | None) -> None:
    w.write(0, f"{title}:\t")
    values = annotations or {}
    keys = sorted(k for k in values if k not in SKIP_ANNOTATIONS)
    if not keys:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(values[key]).removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                limit = MAX_ANNOTATION_LEN - 2
                shown = line[:limit] + "..." if len(line) > limit else line
                w.write(0, f"\t  {shown}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _tolerations(w: _Writer, tolerations: Sequence[Obj] | None) -> None:
    w.write(0, "Tolerations:\t")
    items = sorted(tolerations or [], key=lambda t: str(t.get("key") or ""))
    if not items:
        w.write(0, "<none>\n")
        return
    for i, t in enumerate(items):
        key, value, effect = t.get("key") or "", t.get("value") or "", t.get("effect") or ""
        text = ("\t" if i else "") + key
        if value:
            text += f"={value}"
        if effect:
            text += f":{effect}"
        if t.get("operator") == "Exists" and not value:
            text += " op=Exists" if key or effect else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, text + "\n")


def _ports(ports: Sequence[Obj], key: str) -> str:
    return ", ".join(f"{p.get(key) or 0}/{p.get('protocol') or 'TCP'}" for p in ports)


def _probe(probe: Obj) -> str:
    attrs = (
        f"delay={probe.get('initialDelaySeconds') or 0}s "
        f"timeout={probe.get('timeoutSeconds') or 0}s "
        f"period={probe.get('periodSeconds') or 0}s "
        f"#success={probe.get('successThreshold') or 0} "
        f"#failure={probe.get('failureThreshold') or 0}"
    )
    if probe.get("exec") is not None:
        return f"exec {_go_list(probe['exec'].get('command') or [])} {attrs}"
    if probe.get("httpGet") is not None:
        get = probe["httpGet"]
        scheme = str(get.get("scheme") or "HTTP").lower()
        host = str(get.get("host") or "")
        port = str(get.get("port") if get.get("port") is not None else "")
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{port}" if port else host
        return f"http-get {scheme}://{netloc}{get.get('path') or ''} {attrs}"
    if probe.get("tcpSocket") is not None:
        tcp = probe["tcpSocket"]
        return f"tcp-socket {tcp.get('host') or ''}:{tcp.get('port')} {attrs}"
    if probe.get("grpc") is not None:
        grpc = probe["grpc"]
        return f"grpc <pod>:{grpc.get('port')} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
    "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def quantity(value: object) -> float | None:
    """A resource quantity (``500m``, ``64Mi``, ``1e3``) as a number; None if unreadable."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        return float(match.group(1)) * _SUFFIX[match.group(2) or ""]
    except ValueError:
        return None


def _resource_env(container: Obj, ref: Obj) -> str:
    """The value of a ``resourceFieldRef``, rounded up by its divisor as the kubelet does."""
    resource = str(ref.get("resource") or "")
    kind, _, name = resource.partition(".")
    section = (container.get("resources") or {}).get(kind) or {}
    amount = quantity(section.get(name, 0)) if name in ("cpu", "memory") else None
    divisor = quantity(ref.get("divisor") or "1") or 1.0
    if amount is None:
        return ""
    value = str(math.ceil(amount / divisor))
    if value == "0" and resource in ("limits.cpu", "limits.memory"):
        return "node allocatable"
    return value


def _env(w: _Writer, container: Obj, pod: Obj) -> None:
    env = container.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    meta = pod.get("metadata") or {}
    for e in env:
        name = e.get("name", "")
        source = e.get("valueFrom")
        if source is None:
            for i, line in enumerate(str(e.get("value") or "").split("\n")):
                w.write(3, f"{name}:\t{line}\n" if i == 0 else f"\t{line}\n")
            continue
        if source.get("fieldRef") is not None:
            ref = source["fieldRef"]
            path = ref.get("fieldPath") or ""
            # kubectl resolves only the fields both its field-label conversion
            # and its metadata accessor know: the pod's name and namespace.
            value = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
            resolved = value.get(path) or ""
            w.write(3, f"{name}:\t{resolved} ({ref.get('apiVersion') or 'v1'}:{path})\n")
        elif source.get("resourceFieldRef") is not None:
            ref = source["resourceFieldRef"]
            value_text = _resource_env(container, ref)
            w.write(3, f"{name}:\t{value_text} ({ref.get('resource')})\n")
        elif source.get("secretKeyRef") is not None:
            ref = source["secretKeyRef"]
            optional = "true" if ref.get("optional") else "false"
            w.write(
                3,
                f"{name}:\t<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
                f"\tOptional: {optional}\n",
            )
        elif source.get("configMapKeyRef") is not None:
            ref = source["configMapKeyRef"]
            optional = "true" if ref.get("optional") else "false"
            w.write(
                3,
                f"{name}:\t<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
                f"\tOptional: {optional}\n",
            )


def _state(w: _Writer, title: str, state: Obj) -> None:
    if state.get("running") is not None:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("waiting") is not None:
        w.write(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode') or 0}\n")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _resources(w: _Writer, resources: Obj | None) -> None:
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = (resources or {}).get(key) or {}
        if values:
            w.write(2, f"{title}:\n")
        for name in sorted(values):
            w.write(3, f"{name}:\t{values[name]}\n")


def _containers(
    w: _Writer, title: str, containers: Sequence[Obj], statuses: Sequence[Obj], pod: Obj
) -> None:
    by_name = {s.get("name"): s for s in statuses}
    w.write(0, f"{title}:" + ("" if containers else " <none>") + "\n")
    for c in containers:
        status = by_name.get(c.get("name"))
        w.write(1, f"{c.get('name')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID') or ''}\n")
        w.write(2, f"Image:\t{c.get('image') or ''}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID') or ''}\n")
        ports = c.get("ports") or []
        for key, one, many in (
            ("containerPort", "Port", "Ports"),
            ("hostPort", "Host Port", "Host Ports"),
        ):
            text = _ports(ports, key)
            if "," in text:
                w.write(2, f"{many}:\t{text}\n")
            else:
                w.write(2, f"{one}:\t{text or '<none>'}\n")
        if c.get("restartPolicy"):
            w.write(2, f"Restart Policy:\t{c['restartPolicy']}\n")
        for label, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{label}:\n")
                for arg in c[key]:
                    for line in str(arg).split("\n"):
                        w.write(3, f"{line}\n")
        if status is not None:
            _state(w, "State", status.get("state") or {})
            last = status.get("lastState") or {}
            if last.get("terminated") is not None:
                _state(w, "Last State", last)
            w.write(2, f"Ready:\t{_bool(status.get('ready'))}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount') or 0}\n")
        _resources(w, c.get("resources"))
        for label, key in (
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ):
            if c.get(key) is not None:
                w.write(2, f"{label}:\t{_probe(c[key])}\n")
        _env(w, c, pod)
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: str(m.get("mountPath")))
        w.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


def _volumes(w: _Writer, volumes: Sequence[Obj]) -> None:
    if not volumes:
        w.write(0, "Volumes:\t<none>\n")
        return
    w.write(0, "Volumes:\n")
    for v in volumes:
        w.write(1, f"{v.get('name')}:\n")
        if v.get("hostPath") is not None:
            hp = v["hostPath"]
            w.write(
                2,
                "Type:\tHostPath (bare host directory volume)\n"
                f"    Path:\t{hp.get('path')}\n"
                f"    HostPathType:\t{hp.get('type') or '<none>'}\n",
            )
        elif v.get("emptyDir") is not None:
            ed = v["emptyDir"]
            size = ed.get("sizeLimit")
            size_text = str(size) if size is not None and (quantity(size) or 0) > 0 else "<unset>"
            w.write(
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                f"    Medium:\t{ed.get('medium') or ''}\n"
                f"    SizeLimit:\t{size_text}\n",
            )
        elif v.get("configMap") is not None:
            cm = v["configMap"]
            w.write(
                2,
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                f"    Name:\t{cm.get('name') or ''}\n"
                f"    Optional:\t{'true' if cm.get('optional') else 'false'}\n",
            )
        elif v.get("secret") is not None:
            s = v["secret"]
            w.write(
                2,
                "Type:\tSecret (a volume populated by a Secret)\n"
                f"    SecretName:\t{s.get('secretName') or ''}\n"
                f"    Optional:\t{'true' if s.get('optional') else 'false'}\n",
            )
        elif v.get("downwardAPI") is not None:
            w.write(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n")
            w.write(2, "Items:\n")
            for item in v["downwardAPI"].get("items") or []:
                if item.get("fieldRef") is not None:
                    w.write(3, f"{item['fieldRef'].get('fieldPath')} -> {item.get('path')}\n")
                if item.get("resourceFieldRef") is not None:
                    w.write(
                        3, f"{item['resourceFieldRef'].get('resource')} -> {item.get('path')}\n"
                    )
        else:
            w.write(1, "<unknown>\n")


def qos_class(pod: Obj) -> str:
    """The pod's QoS class: the status' when given, else computed as the kubelet does."""
    given = (pod.get("status") or {}).get("qosClass")
    if given:
        return str(given)
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, float] = {}
    limits: dict[str, float] = {}
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req = {k: quantity(v) or 0.0 for k, v in (res.get("requests") or {}).items()}
        lim = {k: quantity(v) or 0.0 for k, v in (res.get("limits") or {}).items()}
        for name in ("cpu", "memory"):
            if req.get(name):
                requests[name] = requests.get(name, 0.0) + req[name]
            if lim.get(name):
                limits[name] = limits.get(name, 0.0) + lim[name]
        if not all(lim.get(n) for n in ("cpu", "memory")):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(requests.get(n, limits[n]) == limits[n] for n in ("cpu", "memory")):
        return "Guaranteed"
    return "Burstable"


def _events(w: _Writer, events: Sequence[Obj], now: float) -> None:
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=event_time):
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        w.write(
            1,
            f"{e.get('type') or ''}\t{e.get('reason') or ''}\t{event_interval(e, now)}\t"
            f"{source}\t{str(e.get('message') or '').strip()}\n",
        )


def describe_pod(pod: Obj, events: Sequence[Obj] | None, *, now: float) -> str:
    """The text of ``kubectl describe pod`` for ``pod`` and its ``events`` (None: not shown)."""
    from minikubelet.client.printing import since

    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    w = _Writer()
    w.write(0, f"Name:\t{meta.get('name') or ''}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace') or ''}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("nodeName"):
        w.write(0, f"Node:\t{spec['nodeName']}/{status.get('hostIP') or ''}\n")
    else:
        w.write(0, "Node:\t<none>\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    phase = status.get("phase") or ""
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'], now)})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds') or 0}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        w.write(0, f"SeccompProfile:\t{seccomp.get('type')}\n")
        if seccomp.get("type") == "Localhost":
            w.write(0, f"LocalhostProfile:\t{seccomp.get('localhostProfile')}\n")
    w.write(0, f"IP:\t{status.get('podIP') or ''}\n")
    ips = status.get("podIPs") or []
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if owners:
        w.write(0, f"Controlled By:\t{owners[0].get('kind')}/{owners[0].get('name')}\n")
    if status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(
            w,
            "Init Containers",
            spec["initContainers"],
            status.get("initContainerStatuses") or [],
            pod,
        )
    _containers(
        w, "Containers", spec.get("containers") or [], status.get("containerStatuses") or [], pod
    )
    gates = spec.get("readinessGates") or []
    if gates:
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        for gate in gates:
            kind = gate.get("conditionType")
            w.write(1, f"{kind} \t{conditions.get(kind) or '<none>'} \n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    _volumes(w, spec.get("volumes") or [])
    w.write(0, f"QoS Class:\t{qos_class(pod)}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, spec.get("tolerations"))
    if events is not None:
        _events(w, events, now)
    return w.text()
