"""textcat-kit benchmarks: ``python -m benchmarks --list`` (see ``benchmarks/__main__.py``)."""
