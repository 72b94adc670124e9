"""Cluster runs: SLURM batch scripts, synchronized auto-requeue, atomic checkpoints, resume points."""
