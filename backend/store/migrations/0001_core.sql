-- Jobs mirrored from their folders, with their events and metrics, and ingestion offsets.
CREATE TABLE jobs (
    id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    title VARCHAR,
    spec JSON NOT NULL,
    state VARCHAR NOT NULL,
    done DOUBLE,
    total DOUBLE,
    rate DOUBLE,
    eta_s DOUBLE,
    error VARCHAR,
    attempt INTEGER DEFAULT 1,
    created TIMESTAMP,
    started TIMESTAMP,
    finished TIMESTAMP,
    heartbeat TIMESTAMP,
    group_id VARCHAR
);

CREATE TABLE job_events (
    job_id VARCHAR NOT NULL,
    t TIMESTAMP NOT NULL,
    level VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    data JSON
);

-- Long format: one row per (job, step, metric). Training runs use their job id as run id.
CREATE TABLE metrics (
    job_id VARCHAR NOT NULL,
    step BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    value DOUBLE,
    t DOUBLE
);

CREATE TABLE ingest_offsets (
    job_id VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    byte_offset BIGINT NOT NULL,
    lines BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, file)
);

CREATE TABLE audit_log (
    t TIMESTAMP DEFAULT current_timestamp,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    target VARCHAR,
    detail JSON
);
