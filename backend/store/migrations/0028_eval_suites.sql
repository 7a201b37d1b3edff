-- Eval suites (named, versioned prompt lists with optional references and criteria), every
-- answer a target gave in an eval job with its latency and tokens, each scorer's score of it,
-- the promotion gate's decisions (a run made candidate or promoted, per project), and people's
-- ratings of the answers (for the judge's agreement).
CREATE TABLE eval_suites (
    id VARCHAR PRIMARY KEY,            -- <name>-v<version>
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    source VARCHAR,                    -- file:<name> | dataset:<name>@<version id> | monitor:<name>
    hash VARCHAR NOT NULL,             -- content hash of the rows
    n_prompts INTEGER NOT NULL,
    created_by VARCHAR,
    created TIMESTAMP DEFAULT current_timestamp,
    UNIQUE (name, version)
);
CREATE TABLE eval_prompts (
    suite_id VARCHAR NOT NULL,
    idx INTEGER NOT NULL,
    prompt VARCHAR NOT NULL,
    reference VARCHAR,
    criteria JSON,
    PRIMARY KEY (suite_id, idx)
);
CREATE TABLE eval_outputs (
    job_id VARCHAR NOT NULL,
    suite_id VARCHAR NOT NULL,
    target VARCHAR NOT NULL,           -- run id, base:PATH or endpoint:MODEL@URL
    idx INTEGER NOT NULL,
    output VARCHAR,
    latency_s DOUBLE,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    error VARCHAR,
    PRIMARY KEY (job_id, target, idx)
);
CREATE TABLE eval_scores (
    job_id VARCHAR NOT NULL,
    suite_id VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    idx INTEGER NOT NULL,
    scorer VARCHAR NOT NULL,
    score DOUBLE,                      -- NULL: the row lacked what the scorer needs (see note)
    note VARCHAR,
    PRIMARY KEY (job_id, target, idx, scorer)
);
CREATE TABLE promotions (
    id VARCHAR PRIMARY KEY,
    project VARCHAR NOT NULL,          -- the dataset the run trained on
    run_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,           -- candidate | promoted | refused
    against VARCHAR,                   -- the base or the promoted run it was gated against
    gate JSON,                         -- the suites, margins and figures of the decision
    decided_by VARCHAR,
    created TIMESTAMP DEFAULT current_timestamp
);
-- People's 1-10 ratings of suite answers (in the app, or imported from Label Studio), set
-- against the LLM judge's scores per rubric to measure how far the judge can be trusted.
CREATE TABLE eval_ratings (
    suite_id VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    idx INTEGER NOT NULL,
    rater VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    source VARCHAR NOT NULL,           -- in-app | label-studio
    created TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (suite_id, target, idx, rater)
);
