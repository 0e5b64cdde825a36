"""Benchmarks for ``make bench``: each module's ``run()`` prints its own table.

Ratios are against peers measured in the same run, on the same loopback server; a
benchmark never fails a build because the machine is slow.
"""
