"""Ingestion: registers processes and streams, stores blocks untouched. Never converts or reads the lake."""
