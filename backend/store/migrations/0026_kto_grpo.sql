-- KTO feedback: answers marked desirable or not, one row each, in named feedback sets (thumbs
-- ratings on the Preferences page, kto-jsonl imports; review verdicts are read from `reviews`
-- when a run is launched), and the answers GRPO sampled with each reward function's value.
CREATE TABLE feedback (
    id VARCHAR PRIMARY KEY,           -- rating: one per (set, item, response, rater); import: content hash
    set_name VARCHAR NOT NULL,
    prompt JSON NOT NULL,             -- list of {role, content}
    completion VARCHAR NOT NULL,
    label BOOLEAN NOT NULL,           -- true = desirable (thumbs up)
    source VARCHAR NOT NULL,          -- 'rating' | 'import'
    origin JSON,                      -- {item_id, response} of a rating; {file, line} of an import
    who VARCHAR,
    created TIMESTAMP NOT NULL
);

CREATE TABLE run_completions (
    run_id VARCHAR NOT NULL,          -- the GRPO train job
    step INTEGER NOT NULL,            -- the logged step the sample was taken at
    prompt VARCHAR,
    completion VARCHAR,
    rewards JSON                      -- {function: reward}
);
