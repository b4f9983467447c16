"""Benchmarks: API calls and time per sync, policy throughput, memory (run each file as a script)."""
