"""Peer task queues' apps for benchmarks/peers: a no-op task and an add task each,
configured from BENCH_* environment variables set by benchmarks/peers/runner.py."""
