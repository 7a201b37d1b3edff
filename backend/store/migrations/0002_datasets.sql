-- Datasets, immutable versions and immutable examples (id = content hash of the messages).
CREATE TABLE datasets (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    format VARCHAR NOT NULL DEFAULT 'messages',   -- 'messages' | 'prompt-completion'
    recipe JSON,
    created TIMESTAMP NOT NULL
);

CREATE TABLE dataset_versions (
    id VARCHAR PRIMARY KEY,
    dataset_id VARCHAR NOT NULL,
    number INTEGER NOT NULL,
    parent_version_id VARCHAR,
    created TIMESTAMP NOT NULL,
    hash VARCHAR NOT NULL,            -- sha256 over the ordered example ids
    n_examples INTEGER NOT NULL,
    note VARCHAR,
    UNIQUE (dataset_id, number)
);

CREATE TABLE examples (
    id VARCHAR PRIMARY KEY,           -- sha256 of the canonical messages JSON
    messages JSON NOT NULL,           -- [{role, content}, ...]
    topic VARCHAR,
    parent_id VARCHAR,                -- the example this one edits
    origin JSON,                      -- {job, provider, model, recipe, source...}
    created TIMESTAMP NOT NULL
);

CREATE TABLE version_examples (
    version_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (version_id, position)
);

-- Synthetic generation: what each generate job produced, rejected and filtered.
CREATE TABLE synth_items (
    job_id VARCHAR NOT NULL,
    item VARCHAR NOT NULL,            -- the plan item key, e.g. "billing/3"
    example_id VARCHAR NOT NULL,
    topic VARCHAR,
    messages JSON NOT NULL,
    origin JSON,
    t TIMESTAMP,
    PRIMARY KEY (job_id, item)
);

CREATE TABLE synth_rejects (
    job_id VARCHAR NOT NULL,
    item VARCHAR,
    topic VARCHAR,
    stage VARCHAR NOT NULL,           -- 'request' | 'parse' | 'validate' | 'quality'
    reason VARCHAR NOT NULL,
    raw VARCHAR,                      -- the offending output (truncated), shown as text
    example_id VARCHAR,
    t TIMESTAMP
);

-- One row per finished generate job: the version it made and its quality report.
CREATE TABLE synth_runs (
    job_id VARCHAR PRIMARY KEY,
    dataset_id VARCHAR NOT NULL,
    version_id VARCHAR,
    report JSON,
    t TIMESTAMP
);

-- Human QC sample: examples of a version marked for review (routed by the review module).
CREATE TABLE qc_samples (
    version_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    dataset_id VARCHAR NOT NULL,
    job_id VARCHAR,
    share DOUBLE,
    status VARCHAR NOT NULL DEFAULT 'pending',   -- 'pending' | 'reviewed'
    created TIMESTAMP NOT NULL,
    PRIMARY KEY (version_id, example_id)
);
