"""Ports (BlobStore, MetadataStore) and their adapters. They know no use case and no handler."""
