-- Metadata of what was ingested: processes and streams (blocks: 0002). Portable SQL: the same statements
-- run on SQLite (embedded default) and PostgreSQL (directly or through the RDS Data API).
-- Times are integers: nanoseconds since the Unix epoch (UTC); JSON documents are TEXT.
-- Every row belongs to a tenant, and every lookup names it.

CREATE TABLE processes (
    tenant TEXT NOT NULL,
    process_id TEXT NOT NULL,
    exe TEXT NOT NULL,
    username TEXT NOT NULL,
    computer TEXT NOT NULL,
    start_time_ns BIGINT NOT NULL,
    start_ticks BIGINT NOT NULL,
    tick_frequency BIGINT NOT NULL,
    parent_process_id TEXT,
    properties TEXT NOT NULL,
    insert_time_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, process_id)
);

CREATE TABLE streams (
    tenant TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    process_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    layout TEXT NOT NULL,
    properties TEXT NOT NULL,
    insert_time_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, stream_id),
    FOREIGN KEY (tenant, process_id) REFERENCES processes (tenant, process_id)
);

CREATE INDEX streams_by_process ON streams (tenant, process_id);
