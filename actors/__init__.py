"""The actors of the collector (feeds, compute, API, recorder, tools) and its command line.

`__version__` is the package's one version: pyproject.toml reads it (setuptools dynamic attr)."""

__version__ = "0.16.0"
