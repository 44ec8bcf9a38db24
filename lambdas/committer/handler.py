"""Committer Lambda: the lake's scheduled ``commit`` (each minute) and ``compact`` (hourly)
actions, on a function of its own whose runs take turns (``blocklake.lake.turns``), so that
each table has a single writer. The code is the ETL handler's (``lambdas.etl.handler``), which
answers both."""

from lambdas.etl.handler import handler

__all__ = ["handler"]
