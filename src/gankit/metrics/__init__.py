"""Metrics for judging generated samples."""
