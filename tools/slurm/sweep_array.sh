#!/bin/bash
# sciml fit of $HOME/sciml/configs/turbulence.yaml, rendered by `python -m sciml slurm`.
# Template: a job array sweeping the learning rate and weight decay (3 x 2 = 6 tasks, at most 3 at once),
# each task a separate single-process run with its own run directory. Rendered by
#   python -m sciml slurm --config turbulence.yaml --sweep model.init_args.lr=1e-3,2e-3,4e-3 \
#       --sweep model.init_args.weight_decay=0,1e-4 --array %3 --cpus-per-task 8 --time 04:00:00
# Edit before use: --chdir and the python/config paths on the srun line.
#SBATCH --job-name=turbulence
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
#SBATCH --array=0-5%3
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=runs/turbulence/slurm-%A_%a.out
#SBATCH --chdir=/scratch/YOUR_USER/sciml-runs

set -euo pipefail

# The same directory on every restart of this job, so `--ckpt_path auto` finds its checkpoints.
if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]]; then
    JOB_TAG="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
else
    JOB_TAG="${SLURM_JOB_ID}"
fi
RUN_DIR="runs/turbulence/slurm-${JOB_TAG}"
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

# One combination of the sweep per array task.
SWEEP=(
    '--model.init_args.lr=1e-3 --model.init_args.weight_decay=0'
    '--model.init_args.lr=1e-3 --model.init_args.weight_decay=1e-4'
    '--model.init_args.lr=2e-3 --model.init_args.weight_decay=0'
    '--model.init_args.lr=2e-3 --model.init_args.weight_decay=1e-4'
    '--model.init_args.lr=4e-3 --model.init_args.weight_decay=0'
    '--model.init_args.lr=4e-3 --model.init_args.weight_decay=1e-4'
)
read -r -a SWEEP_ARGS <<< "${SWEEP[$SLURM_ARRAY_TASK_ID]}"
srun --kill-on-bad-exit=1 $HOME/sciml/.venv/bin/python -m sciml fit --config $HOME/sciml/configs/turbulence.yaml --trainer.num_nodes=1 --trainer.devices=1 \
    --trainer.default_root_dir="$RUN_DIR" --trainer.logger.init_args.version="slurm-${JOB_TAG}" "${SWEEP_ARGS[@]}" --ckpt_path=auto
