#!/usr/bin/env python3
"""Build a local image from Debian's static busybox, with no registry.

The image holds /bin/busybox, a link for every applet, /tmp and a /www
directory, and runs ``sh`` by default. Used by ``make run``'s demo pods,
the tests and the benchmarks.

    usage: busybox_image.py [IMAGE]   (default localhost/minikubelet/busybox:1)
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time

import docker

DEFAULT_IMAGE = "localhost/minikubelet/busybox:1"
BUSYBOX = "/bin/busybox"


def _is_static(path: str) -> bool:
    with open(path, "rb") as f:
        header = f.read(4096)
    # A dynamic ELF names its interpreter (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2.
    return header[:4] == b"\x7fELF" and b"ld-linux" not in header and b"ld-musl" not in header


def rootfs_tar() -> bytes:
    if not _is_static(BUSYBOX):
        raise SystemExit(f"{BUSYBOX} is not a static binary: install busybox-static")
    applets = subprocess.run(
        [BUSYBOX, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("tmp", 0o1777), ("www", 0o755), ("etc", 0o755)):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            info.mtime = now
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mtime = now
            tar.addfile(link)
        for name, text in (
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            ),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_image(client: docker.APIClient, image: str = DEFAULT_IMAGE) -> str:
    """The image's id, importing it if absent."""
    try:
        return str(client.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        pass
    repository, tag = image.rsplit(":", 1)
    client.import_image_from_data(
        rootfs_tar(), repository=repository, tag=tag, changes=['CMD ["sh"]', "ENV PATH=/bin"]
    )
    return str(client.inspect_image(image)["Id"])


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_IMAGE
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    print(f"{image} {ensure_image(client, image)[:19]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
