-- Blocks whose conversion failed: the last reason, and how many attempts failed. A block leaves
-- this table when a conversion succeeds. Small (only failures), so not partitioned.
-- And the reconciler's lookup of the blocks inserted in its window.

CREATE INDEX blocks_by_insert_time ON blocks (insert_time_ns);

CREATE TABLE conversion_failures (
    tenant TEXT NOT NULL,
    block_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    failed_time_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, block_id)
);
