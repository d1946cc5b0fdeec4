"""Benchmarks (`tdc bench`, `python run.py bench`): measurements next to their baselines, never
timed tests. They start actors through run.py and the whole system through tests/support, so they
run from a checkout of the repository (`actors.bench.run.main` says so elsewhere)."""
