"""SQL over the lake, for one tenant and one time range at a time."""
