"""Conversion of raw blocks to Parquet tables, idempotent: the same block always gives the same files."""
