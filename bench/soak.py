"""The soak (issue 10): 110 probed pods kept for minutes while manifests change and containers die.

Not part of CI: ``make soak`` (``SOAK_MINUTES``, default 10) or
``python -m bench soak --minutes N``.

- load: 110 pods, each a busybox httpd ``web`` with an HTTP readiness probe
  every 1-2 s and an exec liveness probe every 10 s, plus an ``idle`` sleep
  container, until all are Running and ready.
- churn, for ``--minutes``: every 2-5 s a random pod's manifest is rewritten
  with a changed spec (so it is a new pod: the old one is terminated, the new
  one started), and about one change in seven deletes a file instead and puts
  it back 3-10 s later, unchanged (the same uid as the pod still terminating);
  every 2-6 s ``docker kill`` hits a random running app container.
- settle: churn stops, deleted files are put back, and the end checks are
  repeated until they all pass or the settle deadline. The deadline covers
  the 5 min cap of crash back-off, which a container killed again and again
  can have reached.

End checks: every file's pod is in ``/pods`` with the uid (and
``kubernetes.io/config.hash``) the agent's own loader gives that file, Running
with every container running and ready, and no other pod is listed; no
container of the agent's node belongs to an unexpected pod (nor is a running
duplicate of an expected one); no pod directory under ``<state>/pods/`` is
left for an unexpected uid; the agent is alive and ``/healthz`` is ok; and the
agent's RSS grew by less than 10 %: the median of the last minute of churn
against the median of the first minute of churn, which starts the moment all
pods are Running. Both windows carry the same load, so the difference is what
the churn left behind, not the load itself.

The RSS series is printed as a table and drawn beside the JSON result in
``bench/results/soak-<timestamp>.{json,png}``; the exit status is 1 when any
end check fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import random
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import psutil

from bench.common import (
    RESULTS,
    AgentProcess,
    api_client,
    busybox_image,
    machine_summary,
    manifest_uids,
    median,
    node_label,
    offline_sandbox_image,
    pod_running_and_ready,
    pod_yaml,
    remove_labelled,
    wait_until,
)
from minikubelet.model import naming
from minikubelet.runtime.owner import claim_volume_name

# Its own network: the agent assigns pod addresses itself, so two agents must
# not share one (another engineer's benchmark may run at the same time).
NETWORK, CIDR = "minikubelet-soak", "10.221.0.0/16"
RSS_EVERY = 5.0
PROGRESS_EVERY = 10.0
KILL_EVERY = (2.0, 6.0)
CHANGE_EVERY = (2.0, 5.0)
DELETE_SHARE = 1 / 7
READD_AFTER = (3.0, 10.0)
WINDOW = 60.0
RSS_GROWTH_LIMIT = 0.10
START_TIMEOUT = 600.0
CHECK_EVERY = 2.0
# Crash back-off is capped at 5 min; a minute more for the restart and probes.
DEFAULT_SETTLE = 360.0
# A sample per RSS_EVERY for a day at most: the sampler cannot outlive a bad run.
MAX_SAMPLES = 17_280
SHOWN_PROBLEMS = 20

CHECKS = (
    "pods match their files",
    "no orphaned containers",
    "no orphaned pod directories",
    "agent alive and healthy",
    "RSS growth under 10%",
)


@dataclass
class Report:
    machine: str
    seed: int
    pods: int
    minutes: float
    node: str = ""
    # Seconds since the agent started: all pods Running (churn starts), churn
    # ends, the end checks are done.
    all_running_at: float = 0.0
    churn_end_at: float = 0.0
    settle_seconds: float = 0.0
    end_at: float = 0.0
    kills: int = 0
    kill_misses: int = 0
    rewrites: int = 0
    deletes: int = 0
    readds: int = 0
    # [seconds, kind, pod]: kind is kill, rewrite, delete or readd.
    events: list[tuple[float, str, str]] = field(default_factory=list)
    # [seconds, pods listed, pods Running and ready]
    progress: list[tuple[float, int, int]] = field(default_factory=list)
    # [seconds, MiB]
    rss: list[tuple[float, float]] = field(default_factory=list)
    rss_first_minute_mib: float = 0.0
    rss_last_minute_mib: float = 0.0
    rss_settle_mib: float = 0.0
    rss_growth: float = 0.0
    agent_cpu_seconds: float = 0.0
    max_restart_count: int = 0
    agent_log_errors: list[str] = field(default_factory=list)
    checks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name in CHECKS if self.checks.get(name)]


def manifest(name: str, image: str, generation: int, period: int) -> str:
    """The probe bench's pod, plus an idle container; ``generation`` makes each rewrite new."""
    script = "mkdir -p /srv && echo ok > /srv/index.html && exec httpd -f -p 8080 -h /srv"
    web = {
        "name": "web",
        "image": image,
        "command": ["sh", "-c", script],
        "env": [{"name": "SOAK_GENERATION", "value": str(generation)}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": period},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10},
    }
    idle = {"name": "idle", "image": image, "command": ["sleep", "1000000"]}
    return pod_yaml(name, [web, idle])


class RssSampler:
    """The agent's RSS every few seconds, on a thread of its own.

    The main loop blocks in Docker and HTTP calls that can take seconds under
    churn; sampling there would leave gaps exactly when the agent is busiest.
    """

    def __init__(self, ps: psutil.Process, t0: float) -> None:
        self._ps = ps
        self._t0 = t0
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for _ in range(MAX_SAMPLES):
            try:
                rss = self._ps.memory_info().rss
            except psutil.Error:
                return  # the agent is gone; the end checks say so
            with self._lock:
                self._samples.append((time.monotonic() - self._t0, rss / 2**20))
            if self._stop.wait(RSS_EVERY):
                return

    def samples(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._samples)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(RSS_EVERY * 2)


class Churn:
    """The manifests on disk and the changes made to them."""

    def __init__(
        self, agent: AgentProcess, image: str, pods: int, rng: random.Random, report: Report
    ) -> None:
        self.agent = agent
        self.image = image
        self.rng = rng
        self.report = report
        self.specs = {f"s{i:03d}": (0, 1) for i in range(pods)}  # name -> (generation, period)
        self.deleted: dict[str, float] = {}  # name -> when to put it back (monotonic)

    def write(self, name: str) -> None:
        generation, period = self.specs[name]
        self.agent.put_manifest(name, manifest(name, self.image, generation, period))

    def change(self, now: float, t: float) -> None:
        present = sorted(set(self.specs) - set(self.deleted))
        name = self.rng.choice(present)
        if self.rng.random() < DELETE_SHARE:
            (self.agent.manifests / f"{name}.yaml").unlink()
            self.deleted[name] = now + self.rng.uniform(*READD_AFTER)
            self.report.deletes += 1
            self.report.events.append((t, "delete", name))
            return
        generation, _ = self.specs[name]
        self.specs[name] = (generation + 1, self.rng.choice((1, 2)))
        self.write(name)
        self.report.rewrites += 1
        self.report.events.append((t, "rewrite", name))

    def readd_due(self, now: float, t: float) -> None:
        for name, due in sorted(self.deleted.items()):
            if due <= now:
                self.write(name)
                del self.deleted[name]
                self.report.readds += 1
                self.report.events.append((t, "readd", name))

    def next_readd(self) -> float:
        return min(self.deleted.values(), default=float("inf"))


def kill_one(
    client: docker.APIClient, node: str, rng: random.Random, report: Report, t: float
) -> None:
    running = client.containers(
        filters={
            "label": [node_label(node), f"{naming.DOCKER_TYPE}={naming.TYPE_CONTAINER}"],
            "status": "running",
        }
    )
    if not running:
        report.kill_misses += 1
        return
    target = rng.choice(running)
    labels = target["Labels"]
    try:
        client.kill(target["Id"])
    except docker.errors.APIError:
        # Stopped between the listing and the kill: a pod being replaced.
        report.kill_misses += 1
        return
    report.kills += 1
    pod = labels.get(naming.POD_NAME, "?")
    report.events.append((t, "kill", f"{pod}/{labels.get(naming.CONTAINER_NAME, '?')}"))


def _describe(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    parts = [str(status.get("phase"))]
    for s in status.get("containerStatuses") or []:
        state = next(iter(s["state"]), "?")
        reason = (s["state"].get(state) or {}).get("reason", "")
        parts.append(f"{s['name']} {state}{' ' + reason if reason else ''} ready={s['ready']}")
    return ", ".join(parts)


def end_checks(
    agent: AgentProcess, client: docker.APIClient, expected: dict[str, str]
) -> dict[str, list[str]]:
    """Check name -> what is wrong (empty when it passes); RSS is judged elsewhere."""
    problems: dict[str, list[str]] = {name: [] for name in CHECKS[:4]}
    alive = problems["agent alive and healthy"]
    if agent.proc.poll() is not None:
        alive.append(f"the agent exited with {agent.proc.returncode}")
        return problems
    try:
        health = agent.get("/healthz")
        items = agent.pods()
    except OSError as e:
        alive.append(f"the agent does not answer: {e}")
        return problems
    if health != b"ok":
        alive.append(f"/healthz says {health!r}")

    wanted = set(expected.values())
    by_uid = {p["metadata"]["uid"]: p for p in items}
    match = problems["pods match their files"]
    for file, uid in sorted(expected.items()):
        pod = by_uid.get(uid)
        if pod is None:
            listed = [
                p["metadata"]["uid"][:12]
                for p in items
                if p["metadata"]["name"].startswith(file.removesuffix(".yaml") + "-")
            ]
            match.append(f"{file}: no pod with uid {uid[:12]} (listed: {listed or 'none'})")
        elif (pod["metadata"].get("annotations") or {}).get(naming.CONFIG_HASH) != uid:
            match.append(f"{file}: config.hash is not {uid[:12]}")
        elif not pod_running_and_ready(pod):
            match.append(f"{file}: {_describe(pod)}")
    for uid, pod in sorted(by_uid.items()):
        if uid not in wanted:
            match.append(f"extra pod {pod['metadata']['name']} {uid[:12]}: {_describe(pod)}")

    reported = {
        str(s.get("containerID", "")).removeprefix("docker://")
        for p in items
        for s in (p.get("status") or {}).get("containerStatuses") or []
    }
    orphans = problems["no orphaned containers"]
    sandboxes: dict[str, int] = {}
    for c in client.containers(all=True, filters={"label": node_label(agent.node)}):
        labels = c["Labels"]
        uid = labels.get(naming.POD_UID, "")
        kind = labels.get(naming.DOCKER_TYPE, "")
        what = f"{c['Names'][0]} ({c['State']}, pod uid {uid[:12]})"
        if uid not in wanted:
            orphans.append(f"orphaned {what}")
        elif c["State"] == "running" and kind == naming.TYPE_SANDBOX:
            sandboxes[uid] = sandboxes.get(uid, 0) + 1
            if sandboxes[uid] > 1:
                orphans.append(f"a second running sandbox {what}")
        elif c["State"] == "running" and c["Id"] not in reported:
            orphans.append(f"running but not in /pods: {what}")

    dirs = problems["no orphaned pod directories"]
    pods_dir = agent.state / "pods"
    if pods_dir.is_dir():
        dirs.extend(
            f"{pods_dir}/{d.name}" for d in sorted(pods_dir.iterdir()) if d.name not in wanted
        )
    return problems


def rss_verdict(report: Report) -> None:
    start, end = report.all_running_at, report.churn_end_at
    first = [mib for t, mib in report.rss if start <= t <= start + WINDOW]
    last = [mib for t, mib in report.rss if end - WINDOW <= t <= end]
    settle = [mib for t, mib in report.rss if t > end]
    report.rss_first_minute_mib = median(first)
    report.rss_last_minute_mib = median(last)
    report.rss_settle_mib = median(settle)
    report.rss_growth = report.rss_last_minute_mib / report.rss_first_minute_mib - 1
    problems = []
    if not first or not last:
        problems.append(f"too few samples ({len(first)} in the first minute, {len(last)} last)")
    elif not report.rss_growth < RSS_GROWTH_LIMIT:
        problems.append(
            f"RSS grew {report.rss_growth * 100:.1f}%: median {report.rss_first_minute_mib:.1f} "
            f"MiB in the first minute of churn, {report.rss_last_minute_mib:.1f} MiB in the last"
        )
    report.checks["RSS growth under 10%"] = problems


def _progress(agent: AgentProcess, report: Report, t: float, what: str) -> tuple[int, int]:
    try:
        items = agent.pods()
    except OSError as e:
        print(f"[{t:6.0f} s] {what}: /pods did not answer: {e}", flush=True)
        return 0, 0
    ready = sum(pod_running_and_ready(p) for p in items)
    report.progress.append((t, len(items), ready))
    return len(items), ready


def run(pods: int, minutes: float, settle: float, seed: int) -> Report:
    client = api_client()
    image = busybox_image(client)
    infra = offline_sandbox_image()
    rng = random.Random(seed)
    report = Report(machine=machine_summary(), seed=seed, pods=pods, minutes=minutes)
    with tempfile.TemporaryDirectory(prefix="mk-soak-") as tmp:
        t0 = time.monotonic()
        agent = AgentProcess(Path(tmp), infra_image=infra, network=NETWORK, pod_cidr=CIDR, extra=[])
        report.node = agent.node
        sampler = RssSampler(agent.ps, t0)
        try:
            churn = Churn(agent, image, pods, rng, report)
            for name in churn.specs:
                churn.write(name)

            def all_running() -> bool:
                t = time.monotonic() - t0
                listed, ready = _progress(agent, report, t, "load")
                if int(t) % 30 < CHECK_EVERY:
                    print(f"[{t:6.0f} s] load: {ready}/{pods} Running and ready", flush=True)
                if agent.proc.poll() is not None:
                    raise RuntimeError(f"agent exited: {agent.log_path.read_text()[-2000:]}")
                return listed == pods and ready == pods

            wait_until(all_running, timeout=START_TIMEOUT, what="all pods Running", interval=2)
            report.all_running_at = time.monotonic() - t0
            print(
                f"[{report.all_running_at:6.0f} s] all {pods} pods Running; churn for "
                f"{minutes:g} min",
                flush=True,
            )
            _churn(churn, client, t0, minutes * 60)
            report.churn_end_at = time.monotonic() - t0
            now = time.monotonic()
            for name in churn.deleted:
                churn.deleted[name] = now
            churn.readd_due(now, report.churn_end_at)

            expected = manifest_uids(agent.manifests, agent.node)
            deadline = time.monotonic() + settle
            while True:
                checks = end_checks(agent, client, expected)
                _progress(agent, report, time.monotonic() - t0, "settle")
                left = [name for name, problems in checks.items() if problems]
                t = time.monotonic() - t0
                if not left or time.monotonic() > deadline or agent.proc.poll() is not None:
                    break
                if int(t) % 30 < CHECK_EVERY:
                    print(f"[{t:6.0f} s] settling: waiting for {', '.join(left)}", flush=True)
                time.sleep(CHECK_EVERY)
            report.checks.update(checks)
            report.settle_seconds = t - report.churn_end_at
            report.end_at = t
            # The figures of pods that passed: how hard the churn hit them.
            with contextlib.suppress(OSError):
                report.max_restart_count = max(
                    (
                        s["restartCount"]
                        for p in agent.pods()
                        for s in p["status"].get("containerStatuses") or []
                    ),
                    default=0,
                )
            report.agent_cpu_seconds = agent.cpu_seconds()
        finally:
            sampler.stop()
            report.rss = sampler.samples()
            agent.stop()
            remove_labelled(client, node_label(agent.node))
            with contextlib.suppress(docker.errors.APIError):
                client.remove_volume(claim_volume_name(agent.node))
            report.agent_log_errors = [
                line
                for line in agent.log_path.read_text(errors="replace").splitlines()
                if " ERROR " in line or "Traceback" in line
            ][:50]
    rss_verdict(report)
    return report


def _churn(churn: Churn, client: docker.APIClient, t0: float, seconds: float) -> None:
    agent, rng, report = churn.agent, churn.rng, churn.report
    start = time.monotonic()
    end = start + seconds
    next_kill = start + rng.uniform(*KILL_EVERY)
    next_change = start + rng.uniform(*CHANGE_EVERY)
    next_progress = start
    while (now := time.monotonic()) < end:
        if agent.proc.poll() is not None:
            return  # the end checks report it
        t = now - t0
        churn.readd_due(now, t)
        if now >= next_kill:
            kill_one(client, agent.node, rng, report, t)
            next_kill = now + rng.uniform(*KILL_EVERY)
        if now >= next_change:
            churn.change(now, t)
            next_change = now + rng.uniform(*CHANGE_EVERY)
        if now >= next_progress:
            listed, ready = _progress(agent, report, t, "churn")
            if len(report.progress) % 3 == 0:
                print(
                    f"[{t:6.0f} s] churn: {ready}/{listed} Running and ready; {report.kills} "
                    f"kills, {report.rewrites} rewrites, {report.deletes} deletes so far",
                    flush=True,
                )
            next_progress = now + PROGRESS_EVERY
        wake = min(next_kill, next_change, next_progress, churn.next_readd(), end)
        time.sleep(max(0.0, wake - time.monotonic()))


def rss_table(report: Report) -> str:
    lines = ["| t (s) | phase | RSS (MiB) |", "|---|---|---|"]
    for t, mib in report.rss:
        lines.append(f"| {t:.0f} | {_phase(report, t)} | {mib:.1f} |")
    return "\n".join(lines)


def _phase(report: Report, t: float) -> str:
    if t < report.all_running_at:
        return "load"
    if t <= report.churn_end_at:
        first = t <= report.all_running_at + WINDOW
        last = t >= report.churn_end_at - WINDOW
        return "churn" + (" (first minute)" if first else "") + (" (last minute)" if last else "")
    return "settle"


def summarize(report: Report) -> str:
    churn_s = report.churn_end_at - report.all_running_at
    lines = [
        f"soak: {report.machine}, seed {report.seed}",
        "",
        f"{report.pods} pods (web: HTTP readiness + exec liveness; idle), Running and ready "
        f"{report.all_running_at:.0f} s after the agent started; churn for {churn_s / 60:.1f} "
        f"min: {report.kills} kills ({report.kill_misses} missed), {report.rewrites} manifest "
        f"rewrites, {report.deletes} deletes and {report.readds} re-adds; settled in "
        f"{report.settle_seconds:.0f} s; highest restart count at the end "
        f"{report.max_restart_count}; agent CPU {report.agent_cpu_seconds:.0f} s in all",
        "",
        f"RSS, median of the first minute of churn (all {report.pods} pods Running): "
        f"{report.rss_first_minute_mib:.1f} MiB; of the last minute of churn: "
        f"{report.rss_last_minute_mib:.1f} MiB; growth {report.rss_growth * 100:+.1f}% "
        f"(limit +{RSS_GROWTH_LIMIT * 100:.0f}%); after churn, settling: "
        f"{report.rss_settle_mib:.1f} MiB",
        "",
        "| end check | result |",
        "|---|---|",
    ]
    for name in CHECKS:
        problems = report.checks.get(name)
        if problems is None:
            result = "not reached"
        elif problems:
            shown = "; ".join(problems[:SHOWN_PROBLEMS])
            more = (
                f" (and {len(problems) - SHOWN_PROBLEMS} more)"
                if len(problems) > SHOWN_PROBLEMS
                else ""
            )
            result = f"**FAILED**: {shown}{more}"
        else:
            result = "ok"
        lines.append(f"| {name} | {result} |")
    if report.agent_log_errors:
        lines += ["", f"agent log: {len(report.agent_log_errors)} ERROR/Traceback lines, first:"]
        lines += [f"    {line}" for line in report.agent_log_errors[:5]]
    return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    # The soak extra is not installed for lint and CI, where this module is
    # still type-checked: there the import is Any.
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]

    minute = 60.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, height_ratios=(2, 1), layout="constrained"
    )
    start, end, stop = report.all_running_at, report.churn_end_at, report.end_at
    for ax in (top, bottom):
        ax.axvspan(0, start / minute, color="0.9", lw=0)
        ax.axvspan(end / minute, stop / minute, color="#e3f2e1", lw=0)
        ax.grid(alpha=0.3)
    top.axvspan(
        start / minute, (start + WINDOW) / minute, color="#dbe8f7", lw=0, label="minutes compared"
    )
    top.axvspan((end - WINDOW) / minute, end / minute, color="#dbe8f7", lw=0)
    ts = [t / minute for t, _ in report.rss]
    top.plot(ts, [mib for _, mib in report.rss], ".-", color="#1f4e8c", lw=1, ms=3, label="RSS")
    first, last = report.rss_first_minute_mib, report.rss_last_minute_mib
    limit = first * (1 + RSS_GROWTH_LIMIT)
    # Each median over its own minute, so that the last one and the limit stay
    # apart on the page when the growth comes close to the limit.
    top.hlines(
        first,
        start / minute,
        (start + WINDOW) / minute,
        colors="0.2",
        lw=2.5,
        label=f"median, first minute of churn: {first:.1f} MiB",
    )
    top.hlines(
        last,
        (end - WINDOW) / minute,
        end / minute,
        colors="#e67e22",
        lw=2.5,
        label=f"median, last minute of churn: {last:.1f} MiB ({report.rss_growth * 100:+.1f}%)",
    )
    top.hlines(
        limit,
        start / minute,
        stop / minute,
        colors="#c0392b",
        linestyles=":",
        label=f"limit: first minute +{RSS_GROWTH_LIMIT * 100:.0f}% = {limit:.1f} MiB",
    )
    # Zoomed on the series: from zero, a 10 % change is a few pixels.
    values = [mib for _, mib in report.rss]
    top.set_ylim(min(values) * 0.95, max(*values, limit) * 1.04)
    top.set_ylabel("agent RSS (MiB)")
    top.legend(loc="lower right", fontsize="small")
    for x, text in ((0, "load"), (start, "churn"), (end, "settle")):
        top.text(
            x / minute + 0.05,
            0.97,
            text,
            va="top",
            color="0.3",
            transform=top.get_xaxis_transform(),
        )

    for kind, label, color in (
        ("kill", "containers killed", "#c0392b"),
        ("change", "manifests changed (rewrites, deletes)", "#8e44ad"),
    ):
        kinds = ("rewrite", "delete") if kind == "change" else (kind,)
        times = [t / minute for t, k, _ in report.events if k in kinds]
        bottom.step(
            [start / minute, *times, end / minute],
            [*range(len(times) + 1), len(times)],
            where="post",
            color=color,
            label=label,
        )
    bottom.plot(
        [t / minute for t, _, _ in report.progress],
        [ready for _, _, ready in report.progress],
        color="#27ae60",
        label="pods Running and ready",
    )
    bottom.set_ylabel("count")
    bottom.set_xlabel("minutes since the agent started")
    bottom.legend(loc="upper left", fontsize="small")
    verdict = (
        "all end checks passed" if not report.failed else "FAILED: " + ", ".join(report.failed)
    )
    fig.suptitle(
        f"minikubelet soak: {report.pods} pods, {round((end - start) / minute, 1):g} min of churn, "
        f"{report.kills} kills, {report.rewrites + report.deletes} manifest changes; {verdict}"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(
    pods: int = 110, minutes: float = 10.0, settle: float = DEFAULT_SETTLE, seed: int | None = None
) -> int:
    if importlib.util.find_spec("matplotlib") is None:
        print("the soak draws its RSS with matplotlib: pip install -e '.[soak]' (make soak does)")
        return 2
    seed = random.randrange(2**32) if seed is None else seed
    report = run(pods, minutes, settle, seed)
    table = summarize(report)
    print()
    print(rss_table(report))
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%S')}"
    data = {**asdict(report), "failed": report.failed, "table": table}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    plot(report, stem.with_suffix(".png"))
    print(f"\nwritten to {stem}.json and {stem}.png")
    if report.failed:
        print(f"soak FAILED: {', '.join(report.failed)}")
        return 1
    return 0
