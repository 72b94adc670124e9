"""SLURM batch scripts for ``python -m sciml fit``: one task per device, auto-requeue, a stable run directory.

``python -m sciml slurm --config X.yaml [--nodes N --gpus-per-node G ...] [--submit]`` reads the config's
Trainer settings and renders a script in which

- ``--nodes`` equals ``trainer.num_nodes`` and ``--ntasks-per-node`` equals ``trainer.devices``: Lightning's
  SLURM environment starts no processes of its own, it expects ``srun`` to have started one per device (a
  mismatch is refused here, before anything waits in a queue);
- ``--signal=SIGUSR1@90 --requeue --open-mode=append``: 90 s before the time limit the run checkpoints and
  requeues itself (``sciml.hpc.requeue``), and the restarted job appends to the same log;
- the run directory is ``<logger save_dir>/<logger name>/slurm-<job>`` (``runs/<config>/slurm-<job>`` when the
  config names no such logger), the same on every restart, and ``fit --ckpt_path auto`` resumes from the
  newest loadable checkpoint in it;
- parameter sweeps (``--sweep key=v1,v2``) become a job array, one combination per array task.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sciml.core.errors import ConfigError

#: Seconds before the time limit at which SLURM sends the requeue signal (the checkpoint must fit in it).
SIGNAL_LEAD_SECONDS = 90

_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")


@dataclass
class SlurmJob:
    """What the batch script needs; ``python -m sciml slurm`` fills it from the config and its flags."""

    config: Path
    job_name: str
    nodes: int
    tasks_per_node: int
    gpus_per_node: int  # 0 for CPU runs
    cpus_per_task: int
    time: str
    python: str
    workdir: Path
    run_root: str  # the run directory without the job part: <save_dir>/<name>
    logger_has_version: bool  # the config's logger takes a version (CSV/TensorBoard), set to the job
    partition: str | None = None
    account: str | None = None
    mem: str | None = None
    array: str | None = None
    sweep: list[list[str]] = field(default_factory=list)  # one list of fit arguments per array task
    fit_arguments: list[str] = field(default_factory=list)

    @property
    def log_file(self) -> str:
        job = "%A_%a" if self.array or self.sweep else "%j"
        return f"{self.run_root}/slurm-{job}.out"


def check_time(value: str) -> str:
    if not _TIME.match(value):
        raise ConfigError("--time", f"expected [D-]HH:MM:SS (or MM, HH:MM), got {value!r}")
    return value


def resolve_layout(
    accelerator: str,
    devices: object,
    num_nodes: int,
    nodes: int | None,
    gpus_per_node: int | None,
    explicit: set[str],
    config: Path,
) -> tuple[int, int, int]:
    """``(nodes, tasks_per_node, gpus_per_node)`` from the Trainer settings and the flags, or a ConfigError.

    ``explicit`` holds the Trainer keys the config (or the extra arguments) set; a flag that disagrees with an
    explicit key is refused rather than silently overriding it.
    """
    count = _device_count(devices)
    if nodes is not None and nodes < 1:
        raise ConfigError("--nodes", f"must be >= 1, got {nodes}")
    if nodes is not None and "num_nodes" in explicit and nodes != num_nodes:
        raise ConfigError(
            "trainer.num_nodes",
            f"is {num_nodes} in {config} but --nodes is {nodes}: Lightning's DDP and SLURM must agree on the "
            "node count; change one of them",
        )
    nodes = nodes if nodes is not None else num_nodes
    if str(accelerator) == "cpu":
        if gpus_per_node:
            raise ConfigError(
                "trainer.accelerator",
                f"is 'cpu' in {config} but --gpus-per-node is {gpus_per_node}; drop the flag or use GPUs",
            )
        if count is None:
            raise ConfigError(
                "trainer.devices",
                f"is {devices!r} in {config}; a CPU run under SLURM needs the process count per node as an "
                "integer (one SLURM task each)",
            )
        return nodes, count, 0
    if gpus_per_node is not None and gpus_per_node < 1:
        raise ConfigError("--gpus-per-node", f"must be >= 1, got {gpus_per_node}")
    if gpus_per_node is not None and count is not None and "devices" in explicit and count != gpus_per_node:
        raise ConfigError(
            "trainer.devices",
            f"is {count} in {config} but --gpus-per-node is {gpus_per_node}: SLURM starts one task per GPU "
            f"(--ntasks-per-node={gpus_per_node}) and Lightning one per device: they must be equal",
        )
    gpus = gpus_per_node if gpus_per_node is not None else count
    if gpus is None:
        raise ConfigError(
            "trainer.devices",
            f"is {devices!r} in {config}; pass --gpus-per-node or set trainer.devices to the GPUs per node",
        )
    return nodes, gpus, gpus


def _device_count(devices: object) -> int | None:
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, str) and devices.isdigit() and int(devices) > 0:
        return int(devices)
    if isinstance(devices, (list, tuple)) and devices:
        return len(devices)
    return None  # "auto" / -1: decided on the node, unknown here


def sweep_arguments(sweep: list[str]) -> list[list[str]]:
    """``["a.b=1,2", "c=x,y"]`` -> the fit arguments of each combination, in array-task order."""
    if not sweep:
        return []
    axes = []
    for item in sweep:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError("--sweep", f"expected key=value1,value2,..., got {item!r}")
        axes.append([f"--{key.removeprefix('--')}={value}" for value in values.split(",")])
    return [list(combination) for combination in itertools.product(*axes)]


def render(job: SlurmJob) -> str:
    """The batch script text."""
    sbatch = [
        f"--job-name={job.job_name}",
        f"--nodes={job.nodes}",
        f"--ntasks-per-node={job.tasks_per_node}",
        f"--cpus-per-task={job.cpus_per_task}",
    ]
    if job.gpus_per_node:
        sbatch.append(f"--gres=gpu:{job.gpus_per_node}")
    sbatch.append(f"--time={job.time}")
    for flag, value in (("partition", job.partition), ("account", job.account), ("mem", job.mem)):
        if value:
            sbatch.append(f"--{flag}={value}")
    if job.sweep:
        sbatch.append(f"--array=0-{len(job.sweep) - 1}" + (f"%{job.array.lstrip('%')}" if job.array else ""))
    elif job.array:
        sbatch.append(f"--array={job.array}")
    sbatch += [
        f"--signal=SIGUSR1@{SIGNAL_LEAD_SECONDS}",
        "--requeue",
        "--open-mode=append",
        f"--output={job.log_file}",
        f"--chdir={job.workdir}",
    ]
    lines = ["#!/bin/bash", f"# sciml fit of {job.config}, rendered by `python -m sciml slurm`."]
    lines += [f"#SBATCH {line}" for line in sbatch]
    lines += [
        "",
        "set -euo pipefail",
        "",
        "# The same directory on every restart of this job, so `--ckpt_path auto` finds its checkpoints.",
        'if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]]; then',
        '    JOB_TAG="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        "else",
        '    JOB_TAG="${SLURM_JOB_ID}"',
        "fi",
        f'RUN_DIR="{job.run_root}/slurm-${{JOB_TAG}}"',
        'mkdir -p "$RUN_DIR"',
        'echo "sciml: job ${JOB_TAG} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?},"'
        ' "run dir ${RUN_DIR}"',
        "",
        "# One thread pool per task, sized to its CPUs.",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        "export PYTHONUNBUFFERED=1",
        "# A rank that fails ends the job instead of leaving the others waiting in a collective.",
        "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1",
        'export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"',
        "# Lightning takes MASTER_ADDR/MASTER_PORT from SLURM. On nodes with several networks, name the one",
        "# NCCL (GPUs) and gloo (CPUs) should use, e.g.:",
        "# export NCCL_SOCKET_IFNAME=ib0 GLOO_SOCKET_IFNAME=ib0",
        "",
    ]
    fit = [
        job.python,
        "-m",
        "sciml",
        "fit",
        "--config",
        str(job.config),
        f"--trainer.num_nodes={job.nodes}",
        f"--trainer.devices={job.tasks_per_node}",
        *job.fit_arguments,
    ]
    quoted = " ".join(shlex.quote(part) for part in fit)
    run_dir_arguments = '--trainer.default_root_dir="$RUN_DIR"'
    if job.logger_has_version:
        run_dir_arguments += ' --trainer.logger.init_args.version="slurm-${JOB_TAG}"'
    if job.sweep:
        lines.append("# One combination of the sweep per array task.")
        lines.append("SWEEP=(")
        lines += [f"    {shlex.quote(' '.join(arguments))}" for arguments in job.sweep]
        lines.append(")")
        lines.append('read -r -a SWEEP_ARGS <<< "${SWEEP[$SLURM_ARRAY_TASK_ID]}"')
        run_dir_arguments += ' "${SWEEP_ARGS[@]}"'
    lines.append(f"srun --kill-on-bad-exit=1 {quoted} \\\n    {run_dir_arguments} --ckpt_path=auto")
    return "\n".join(lines) + "\n"


def submit(script: str, run_root: Path) -> str:
    """``sbatch`` the script (making its log directory first: SLURM does not); returns the job id."""
    run_root.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError("--submit", "sbatch is not on PATH: is this a SLURM login node?") from None
    if result.returncode != 0:
        raise ConfigError("--submit", f"sbatch refused the script: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]
