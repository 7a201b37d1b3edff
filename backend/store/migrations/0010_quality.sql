-- Quality signals of a drift check: the score jobs that rate the window's responses under the
-- newest run, and the run's training-time baseline (its held-out split, scored once per run).
CREATE TABLE quality_checks (
    check_id VARCHAR PRIMARY KEY,     -- the drift check these scores belong to
    monitor_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,          -- the run whose adapter was scored
    model VARCHAR NOT NULL,           -- the `model` key of its scores
    window_job_id VARCHAR NOT NULL,   -- score job over the window's prompts with responses
    baseline_job_id VARCHAR NOT NULL, -- score job over the run's held-out (or training) data
    baseline_source VARCHAR NOT NULL, -- 'held-out' | 'training'
    n_window INTEGER NOT NULL,
    n_baseline INTEGER NOT NULL,
    margin DOUBLE NOT NULL,           -- threshold = training-time mean x (1 + margin)
    created TIMESTAMP NOT NULL
);
