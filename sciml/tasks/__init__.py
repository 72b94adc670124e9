"""LightningModules: each owns its losses, metrics, optimizers, logging and plots; networks are injected."""
