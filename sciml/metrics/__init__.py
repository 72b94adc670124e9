"""Evaluation metrics shared by tasks and tools."""
