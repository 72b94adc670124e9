#!/bin/bash
# sciml fit of $HOME/sciml/configs/turbulence_paper.yaml, rendered by `python -m sciml slurm`.
# Template: one node, 4 GPUs (4 DDP processes). Rendered by
#   python -m sciml slurm --config turbulence_paper.yaml --gpus-per-node 4 --cpus-per-task 8 --partition gpu
# Render your own rather than editing this one: the command checks the config against the layout.
# Edit before use: --chdir (where runs/ goes), --partition, and the python/config paths on the srun line.
#SBATCH --job-name=turbulence_paper
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:4
#SBATCH --time=24:00:00
#SBATCH --partition=gpu
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=runs/turbulence_paper/slurm-%j.out
#SBATCH --chdir=/scratch/YOUR_USER/sciml-runs

set -euo pipefail

# The same directory on every restart of this job, so `--ckpt_path auto` finds its checkpoints.
if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]]; then
    JOB_TAG="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
else
    JOB_TAG="${SLURM_JOB_ID}"
fi
RUN_DIR="runs/turbulence_paper/slurm-${JOB_TAG}"
mkdir -p "$RUN_DIR"
echo "sciml: job ${JOB_TAG} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}," "run dir ${RUN_DIR}"

# One thread pool per task, sized to its CPUs.
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
export PYTHONUNBUFFERED=1
# A rank that fails ends the job instead of leaving the others waiting in a collective.
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
# Lightning takes MASTER_ADDR/MASTER_PORT from SLURM. On nodes with several networks, name the one
# NCCL (GPUs) and gloo (CPUs) should use, e.g.:
# export NCCL_SOCKET_IFNAME=ib0 GLOO_SOCKET_IFNAME=ib0

srun --kill-on-bad-exit=1 $HOME/sciml/.venv/bin/python -m sciml fit --config $HOME/sciml/configs/turbulence_paper.yaml --trainer.num_nodes=1 --trainer.devices=4 \
    --trainer.default_root_dir="$RUN_DIR" --trainer.logger.init_args.version="slurm-${JOB_TAG}" --ckpt_path=auto
