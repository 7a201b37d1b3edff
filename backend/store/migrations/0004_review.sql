-- Review: uncertainty scores, review batches (flagged + QC items), verdicts from any source.
CREATE TABLE scores (
    job_id VARCHAR NOT NULL,          -- the score job (one model, one version, one round)
    example_id VARCHAR NOT NULL,
    method VARCHAR NOT NULL,          -- 'nll' | 'entropy' | 'judge'
    model VARCHAR NOT NULL,           -- model folder name (+ adapter run)
    score DOUBLE NOT NULL,
    n_tokens INTEGER,
    version_id VARCHAR,
    dataset VARCHAR,
    round INTEGER DEFAULT 1,
    PRIMARY KEY (job_id, example_id, method)
);

CREATE TABLE review_batches (
    id VARCHAR PRIMARY KEY,
    dataset VARCHAR NOT NULL,
    version_id VARCHAR NOT NULL,
    score_job_id VARCHAR,
    method VARCHAR,
    model VARCHAR,
    policy JSON,                      -- {kind: top_k|threshold|percentile, value, qc_share}
    round INTEGER NOT NULL DEFAULT 1,
    n_scored INTEGER,
    cut DOUBLE,                       -- the score at the cut line
    ls_url VARCHAR,                   -- Label Studio server (no token, ever)
    ls_project_id INTEGER,
    applied_version_id VARCHAR,       -- the dataset version the verdicts produced
    created TIMESTAMP NOT NULL
);

CREATE TABLE review_items (
    batch_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    score DOUBLE,
    reason VARCHAR NOT NULL,          -- 'flagged' | 'qc'
    ls_task_id INTEGER,
    PRIMARY KEY (batch_id, example_id)
);

CREATE TABLE reviews (
    id VARCHAR PRIMARY KEY,           -- 'ls:<annotation id>' or 'app:<uuid>'
    batch_id VARCHAR NOT NULL,
    example_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    verdict VARCHAR NOT NULL,         -- 'accept' | 'reject' | 'correct'
    categories JSON,
    corrected VARCHAR,
    note VARCHAR,
    source VARCHAR NOT NULL,          -- 'label-studio' | 'in-app'
    external_id VARCHAR,
    created TIMESTAMP,
    updated TIMESTAMP
);
