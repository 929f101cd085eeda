"""The hostile manifests of issue 9, one copy for every layer that is fed them.

Each once broke the agent: a traceback out of ``validate``, a file source
task that died silently, a pod that could never be stopped, or a file
reported ``ok`` with four problems in it. Each must now end as the API
server would take it (a null is an unset field, an unquoted date where a
string belongs is that string) or as an error naming the file and field.
The unit tests (validate, the file source) and the integration tests (the
running agent) feed exactly these.
"""

from __future__ import annotations

from typing import Any

GOOD = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
    "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n"
    "    image: {image}\n    command: [sleep, '3600']\n"
)


def good_manifest(name: str, image: str = "busybox:1") -> str:
    return GOOD.format(name=name, image=image)


def hostile_manifests(image: str = "busybox:1") -> dict[str, str]:
    """File name -> text (``binary.yaml`` holds surrogate escapes: write it with
    ``text.encode("utf-8", "surrogateescape")``)."""

    def good(name: str) -> str:
        return good_manifest(name, image)

    return {
        "date.yaml": good("date") + "    env:\n    - name: D\n      value: 2024-02-30\n",
        "bigint.yaml": good("bigint").replace(
            "terminationGracePeriodSeconds: 0", "terminationGracePeriodSeconds: " + "9" * 5000
        ),
        "resources.yaml": good("resources") + "    resources:\n",
        "policies.yaml": good("policies")
        + "    imagePullPolicy:\n  restartPolicy:\n  dnsPolicy:\n",
        "grace.yaml": good("grace").replace(
            "terminationGracePeriodSeconds: 0", "terminationGracePeriodSeconds:"
        ),
        "nullarg.yaml": good("nullarg") + "    args: [sh, null]\n",
        # A type error, a bad name, a duplicate container and a path-like uid:
        # one TypeError once hid all four.
        "mixed.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  uid: ../../../x\n"
        "spec:\n  containers:\n"
        "  - {name: c, image: i, securityContext: {capabilities: {add: [null]}}}\n"
        "  - {name: c, image: i}\n",
        "newline.json": '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web\\n"},'
        ' "spec": {"containers": [{"name": "c", "image": "i"}]}}',
        # Merge keys nested seven levels, ten sources each: built whole, 10**7 keys.
        "merge.yaml": "a: &a {x: 1, y: 2}\n"
        + "\n".join(
            f"l{n}: &l{n} {{<<: [{', '.join([f'*l{n - 1}' if n > 1 else '*a'] * 10)}]}}"
            for n in range(1, 8)
        )
        + "\n",
        "binary.yaml": "\udcff\udcfe\x00",
        "list.yaml": "- just\n- a list\n",
    }


def value_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value``, parents first: where a mutator may strike."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(value_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(value_paths(v, (*prefix, i)))
    return out
