-- LLM-judge quality of a drift check: the quality-judge jobs that rate the window's
-- (prompt, response) pairs and the newest run's held-out examples (scored once per run and
-- judge model). Their scores land in `scores` with method 'judge'.
CREATE TABLE quality_judge_checks (
    check_id VARCHAR PRIMARY KEY,     -- the drift check these judge scores belong to
    monitor_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,          -- the run whose held-out examples are the baseline
    judge_model VARCHAR NOT NULL,     -- model name at the Settings endpoint
    window_job_id VARCHAR NOT NULL,   -- quality-judge job over the window's pairs
    baseline_job_id VARCHAR NOT NULL, -- quality-judge job over the run's held-out examples
    baseline_source VARCHAR NOT NULL, -- 'held-out' | 'training'
    n_window INTEGER NOT NULL,
    n_baseline INTEGER NOT NULL,
    margin DOUBLE NOT NULL,           -- threshold = training-time mean x (1 - margin)
    created TIMESTAMP NOT NULL
);
