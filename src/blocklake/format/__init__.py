"""The transit wire format: event types, block header, encoder (stdlib + lz4) and Arrow decoder.

A leaf package: it imports nothing else of blocklake. ``blocklake.format.arrow`` needs pyarrow and
is imported only by readers; everything else here runs with the standard library and lz4, so the
SDK can use it.
"""
