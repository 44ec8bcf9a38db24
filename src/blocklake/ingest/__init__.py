"""Ingestion: registers processes and streams, stores blocks untouched; never reads the lake."""
