"""Stepgate benchmarks: `python -m bench` measures the interpreter against a hand-written baseline.

Not part of the test run; results go to bench/results/ (ignored by git).
"""
