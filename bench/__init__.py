"""Benchmarks of airflow-wfe: what governing a DAG costs (``make bench``, docs/performance.md).

One module per measured area; each runs in a process of its own (``python -m bench.<module>``) so
imports, caches and engines of one area never flatter or burden another, and prints its results as
JSON lines. :mod:`bench.run` runs them all, prints the table and writes it into
docs/performance.md. ``BENCH_RUNS`` (default 5) sets how many runs each figure's median, min and max
come from; ``BENCH_QUICK=1`` shrinks every workload to smoke-check the harness in seconds.
"""
