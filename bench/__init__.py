"""Stepgate benchmarks: `python -m bench` measures the interpreter against a hand-written baseline.

Not part of the test run; results go to bench/results/ (ignored by git, except the ones
docs/performance.md publishes, in bench/results/published/: see bench/docs.py).
"""
