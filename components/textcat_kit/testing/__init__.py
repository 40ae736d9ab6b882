"""Helpers for tests and benchmarks: small, local, deterministic models (no hub, no network)."""
