"""A single-node Ceph RGW on loopback, from Debian's packages: a second real S3 for the store lanes.

The same steps as `shared/rgw/start.sh` (a monitor, one OSD on memstore, the
gateway, one S3 user), as child processes of the test session that die with
it. `make test` installs the packages where it is root with apt-get; elsewhere
`missing()` says why the lane skips. Start-up measured here: 1-2 s.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

from callvault.embedded.processes import ChildProcess, free_port

ACCESS_KEY, SECRET_KEY = "testkey", "testsecret"
PROGRAMS = ("radosgw", "radosgw-admin", "ceph-mon", "ceph-osd", "ceph", "monmaptool")

_CONF = """[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
log file = {dir}/log/$name.log
mon cluster log file = {dir}/log/cluster.log
crash dir = {dir}/crash
mon data = {dir}/mon
osd data = {dir}/osd
osd objectstore = memstore
memstore device bytes = 2147483648
osd memory target = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
paxos propose interval = 0.01
rgw frontends = beast endpoint=127.0.0.1:{s3_port}
rgw data = {dir}/rgw
rgw lc debug interval = 10
"""


def missing() -> str | None:
    """Why no RGW can start here, in a sentence; None when it can."""
    absent = [name for name in PROGRAMS if shutil.which(name) is None]
    if absent:
        return (
            f"Ceph RGW is not installed ({', '.join(absent)} missing); `make test` installs Debian's "
            "radosgw, ceph-mon and ceph-osd where it runs as root with apt-get"
        )
    return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except OSError:
        return False


class CephRGW:
    """`with CephRGW() as rgw:` a fresh cluster at `rgw.endpoint`, stopped and removed at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="callvault-rgw-"))
        self.s3_port, self.mon_port = free_port(), free_port()
        self._children: list[ChildProcess] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")

    def _daemon(self, name: str, *args: str) -> ChildProcess:
        child = ChildProcess(f"Ceph {name}", list(args), self.dir / "log" / f"{name}.out")
        child.start()
        self._children.append(child)
        return child

    def start(self, timeout: float = 60.0) -> CephRGW:
        for sub in ("mon", "osd", "run", "log", "rgw", "crash"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
        conf = self.dir / "ceph.conf"
        conf.write_text(_CONF.format(fsid=fsid, mon_port=self.mon_port, s3_port=self.s3_port, dir=self.dir))
        c = ("-c", str(conf))
        monmap = str(self.dir / "monmap")
        try:
            self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                      f"[v2:127.0.0.1:{self.mon_port}]", monmap)  # fmt: skip
            self._run("ceph-mon", *c, "-i", "a", "--mkfs", "--monmap", monmap)
            self._daemon("mon", "ceph-mon", *c, "-i", "a", "-f")
            self._run("ceph", *c, "osd", "new", osd_uuid, "0")  # waits for the monitor
            self._run("ceph-osd", *c, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
            self._daemon("osd", "ceph-osd", *c, "-i", "0", "-f")
            gateway = self._daemon("rgw", "radosgw", *c, "-n", "client.rgw", "-f")
            self._run("radosgw-admin", *c, "user", "create", "--uid=test", "--display-name=test",
                      f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}")  # fmt: skip
            gateway.wait_ready(lambda: _answers(self.endpoint + "/"), timeout, f"serving at {self.endpoint}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the daemons: the cluster is thrown away, and Ceph takes 10 s to stop politely."""
        for child in reversed(self._children):
            child.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> CephRGW:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
