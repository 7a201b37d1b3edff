-- Reproducible runs: the base model's content hash beside each run, and which run a re-run
-- repeats (with the package differences it was warned about at submission).
ALTER TABLE runs ADD COLUMN base_model_hash VARCHAR;
CREATE TABLE reruns (
    run_id VARCHAR PRIMARY KEY,    -- the new run (its train job's id)
    original_id VARCHAR NOT NULL,  -- the run it repeats
    warnings JSON,                 -- e.g. ["torch 2.12.0 -> 2.13.0"]
    created TIMESTAMP DEFAULT current_timestamp
);
