-- PostgreSQL's version of 0002_blocks.sql: the same table, partitioned by
-- the block's begin time, so retention drops whole partitions instead of deleting rows (deleting
-- rows is what made the serverless database expensive for the closest peer system).
-- A unique key of a partitioned table must contain the partition column: the primary key of
-- `blocks` is (tenant, block_id, begin_time_ns). begin_time_ns comes from the block header, so a
-- retried insert carries the same value and still conflicts with the first one.
-- Monthly range partitions are created ahead of time by blocklake.stores.retention; the DEFAULT
-- partition catches blocks outside them (a client clock far off) and is drained into a range
-- partition when that partition is created.

CREATE TABLE blocks (
    tenant TEXT NOT NULL,
    block_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    process_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    begin_ticks BIGINT NOT NULL,
    end_ticks BIGINT NOT NULL,
    begin_time_ns BIGINT NOT NULL,
    end_time_ns BIGINT NOT NULL,
    object_count BIGINT NOT NULL,
    payload_size BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    insert_time_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, block_id, begin_time_ns)
) PARTITION BY RANGE (begin_time_ns);

CREATE TABLE blocks_default PARTITION OF blocks DEFAULT;

CREATE INDEX blocks_by_stream ON blocks (tenant, stream_id, begin_time_ns);
CREATE INDEX blocks_by_time ON blocks (tenant, begin_time_ns);
