-- One row per stored block. PostgreSQL partitions this table: 0002_blocks.postgres.sql.

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
    PRIMARY KEY (tenant, block_id)
);

CREATE INDEX blocks_by_stream ON blocks (tenant, stream_id, begin_time_ns);
CREATE INDEX blocks_by_time ON blocks (tenant, begin_time_ns);
