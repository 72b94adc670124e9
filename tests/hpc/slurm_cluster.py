"""A real one-node SLURM cluster on localhost for the tests: Debian's munge, slurmctld and slurmd.

Installed with apt when missing (the tests run as root on CI machines). The daemons run in the foreground
as children of the test process with their state in a temporary directory and free ports, and are stopped
by PID at the end. ``cred_expire`` is set to 10 s: a requeued job waits that long (plus one second) in
PENDING with reason BeginTime before it starts again, instead of the default 120 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
# The node is this machine under its own host name: Lightning takes the DDP rendezvous address
# (MASTER_ADDR) from SLURM's node list, so the node name must resolve, as it does on real clusters.
NODE = socket.gethostname()
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "srun")


class CannotInstall(Exception):
    """The machine cannot install SLURM (not root, no apt, or no package registry)."""


def ensure_installed() -> None:
    if all(shutil.which(name) or Path(f"/usr/sbin/{name}").exists() for name in DAEMONS):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CannotInstall("SLURM is not installed and this user cannot apt-get install it (needs root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise CannotInstall(f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SlurmCluster:
    root: Path
    cpus: int = 2
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def _write_config(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=sciml-test",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "AuthInfo=cred_expire=10",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "MailProg=/bin/true",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
                    f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
                    f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _munge_running(self) -> bool:
        return subprocess.run(["munge", "-n"], capture_output=True).returncode == 0

    def _start(self, command: list[str], log: str, user: str | None = None) -> None:
        handle = open(self.root / "log" / log, "w")
        self.processes.append(
            subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=self.env, user=user, group=user
            )
        )

    def start(self) -> None:
        self._write_config()
        if not self._munge_running():
            run_dir = Path("/run/munge")
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(run_dir, "munge", "munge")
            if not Path("/etc/munge/munge.key").exists():
                subprocess.run(["mungekey", "--create"], check=True)
                shutil.chown("/etc/munge/munge.key", "munge", "munge")
            self._start(["/usr/sbin/munged", "--foreground"], "munged.out", user="munge")
            self._wait(self._munge_running, "munged to answer")
        self._start(["/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        self._start(["/usr/sbin/slurmd", "-D", "-N", NODE, "-f", str(self.conf)], "slurmd.out")
        self._wait(self._node_idle, "the node to become idle")

    def _node_idle(self) -> bool:
        result = self.run(["sinfo", "-h", "-n", NODE, "-o", "%t"], check=False)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait(self, condition, what, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (self.root / "log").glob("*.log"))
                what = what() if callable(what) else what
                raise TimeoutError(f"gave up waiting for {what} after {timeout} s\n{logs}")
            time.sleep(0.5)

    def run(self, command: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, **kwargs)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, Reason, ...)."""
        out = self.run(["scontrol", "show", "job", "-o", job_id]).stdout
        return dict(item.split("=", 1) for item in out.split() if "=" in item)

    def wait_for_state(self, job_id: str, states: set[str], timeout: float) -> dict[str, str]:
        info: dict[str, str] = {}

        def reached() -> bool:
            nonlocal info
            info = self.job(job_id)
            return info.get("JobState") in states

        self._wait(reached, lambda: f"job {job_id} to reach {states} (last: {info})", timeout)
        return info

    def stop(self) -> None:
        if any(p.poll() is None for p in self.processes):
            self.run(["scancel", "--full", "--user", "root"], check=False)
        for process in reversed(self.processes):  # slurmd, slurmctld, then munged
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
