-- Training runs (id = the train job's id), their evaluations and generations on eval prompts.
CREATE TABLE runs (
    id VARCHAR PRIMARY KEY,
    method VARCHAR,
    base_model VARCHAR,
    dataset VARCHAR,
    dataset_version_id VARCHAR,
    dataset_hash VARCHAR,
    config JSON,
    state VARCHAR,                 -- as last reported by the job; jobs.state is the live truth
    device VARCHAR,
    runtime JSON,
    packages JSON,
    run_dir VARCHAR,
    adapter_path VARCHAR,
    merged_path VARCHAR,
    attempt INTEGER,
    updated TIMESTAMP
);

CREATE TABLE run_eval (
    run_id VARCHAR PRIMARY KEY,
    step BIGINT,
    eval_loss DOUBLE,
    perplexity DOUBLE,
    first_loss DOUBLE,
    last_loss DOUBLE,
    n_train INTEGER,
    n_eval INTEGER
);

CREATE TABLE generations (
    run_id VARCHAR NOT NULL,
    step BIGINT,
    prompt VARCHAR NOT NULL,
    output VARCHAR NOT NULL,
    params JSON
);

-- Trials of an in-process Optuna sweep (one job trains many small trials).
CREATE TABLE sweep_trials (
    job_id VARCHAR NOT NULL,
    trial INTEGER NOT NULL,
    params JSON,
    eval_loss DOUBLE,
    state VARCHAR,
    PRIMARY KEY (job_id, trial)
);
