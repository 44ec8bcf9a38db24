"""Conversion of raw blocks to Parquet tables, idempotent: a block always gives the same files."""
