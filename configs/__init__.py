"""The configs shipped with sciml (installed as ``sciml.configs`` so bare names resolve anywhere)."""
