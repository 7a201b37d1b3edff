-- Monitoring: monitors over a reference dataset version, production batches with their time
-- window, drift checks (one drift job each) and their per-method reports, alerts, and the
-- retraining plans they propose.
CREATE TABLE monitors (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    reference_dataset VARCHAR NOT NULL,
    reference_version_id VARCHAR NOT NULL,
    config JSON NOT NULL,             -- backend.drift.monitors.MonitorConfig
    watch_dir VARCHAR,                -- a folder whose new JSONL/CSV files are ingested
    state VARCHAR NOT NULL,           -- 'ok' | 'alerting' (an alert is open)
    created TIMESTAMP NOT NULL
);

CREATE TABLE production_batches (
    id VARCHAR PRIMARY KEY,
    monitor_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,          -- 'cli' | 'upload' | 'folder'
    name VARCHAR,                     -- file name
    content_hash VARCHAR NOT NULL,    -- sha256 of the file: the same file is not taken twice
    n_records INTEGER NOT NULL,
    n_responses INTEGER NOT NULL,
    window_start TIMESTAMP NOT NULL,  -- earliest record time (received time when none given)
    window_end TIMESTAMP NOT NULL,
    received TIMESTAMP NOT NULL,
    check_id VARCHAR                  -- the drift check that consumed this batch
);

CREATE TABLE production_records (
    batch_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    prompt VARCHAR NOT NULL,
    response VARCHAR,
    t TIMESTAMP,
    PRIMARY KEY (batch_id, position)
);

CREATE TABLE drift_checks (
    id VARCHAR PRIMARY KEY,
    monitor_id VARCHAR NOT NULL,
    job_id VARCHAR,
    reference_version_id VARCHAR NOT NULL,
    window_start TIMESTAMP,
    window_end TIMESTAMP,
    n_reference INTEGER,
    n_window INTEGER,
    created TIMESTAMP NOT NULL,
    evaluated TIMESTAMP,              -- set once the trigger rules have looked at the results
    n_drift INTEGER,
    drifted BOOLEAN,
    alert_id VARCHAR,
    error VARCHAR
);

CREATE TABLE drift_reports (
    check_id VARCHAR NOT NULL,
    monitor_id VARCHAR NOT NULL,
    reference_version_id VARCHAR NOT NULL,
    window_start TIMESTAMP,
    window_end TIMESTAMP,
    method VARCHAR NOT NULL,          -- vocabulary | classifier | mmd | length | topics
    statistic DOUBLE NOT NULL,
    threshold DOUBLE NOT NULL,
    verdict VARCHAR NOT NULL,         -- 'drift' | 'ok'
    details JSON,
    n_reference INTEGER,
    n_window INTEGER,
    created TIMESTAMP NOT NULL,
    PRIMARY KEY (check_id, method)
);

CREATE TABLE alerts (
    id VARCHAR PRIMARY KEY,
    monitor_id VARCHAR NOT NULL,
    check_id VARCHAR NOT NULL,        -- the check that crossed the threshold
    methods JSON NOT NULL,            -- the methods that said drift
    message VARCHAR NOT NULL,
    state VARCHAR NOT NULL,           -- 'open' | 'resolved'
    n_checks INTEGER NOT NULL,        -- checks that found drift while it was open
    created TIMESTAMP NOT NULL,
    resolved TIMESTAMP
);

CREATE TABLE retraining_plans (
    id VARCHAR PRIMARY KEY,
    monitor_id VARCHAR NOT NULL,
    alert_id VARCHAR NOT NULL,
    state VARCHAR NOT NULL,           -- proposed | approved | rejected | done
    auto_approved BOOLEAN NOT NULL DEFAULT false,
    approved_by VARCHAR,
    approved_at TIMESTAMP,
    steps JSON NOT NULL,              -- [{name, kind, state, job_id, reason, ...}]
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
