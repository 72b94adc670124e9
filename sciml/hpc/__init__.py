"""Cluster runs: SLURM batch scripts, synchronized auto-requeue, atomic checkpoints and the choice of resume point."""
