"""Benchmarks: every figure is reported with its ratio to a baseline measured in the same run
(the bare transport, raw SQL, a bare browser print), because absolute times on shared machines
mean little. Run with `python -m bench` (quick) or `python -m bench --full`."""
