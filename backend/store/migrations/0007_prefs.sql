-- Preferences: comparison sets shown blind to analysts (and to an LLM judge), their judgements,
-- and versioned preference sets (prompt / chosen / rejected) built from them or imported.
CREATE TABLE comparison_sets (
    id VARCHAR PRIMARY KEY,
    name VARCHAR UNIQUE NOT NULL,
    mode VARCHAR NOT NULL,           -- 'pairwise' | 'ranking'
    sources JSON NOT NULL,           -- source ids compared (run ids, base:<model>, endpoint:<model>)
    overlap DOUBLE NOT NULL,         -- share of items given to two or more analysts
    analysts JSON NOT NULL,
    seed INTEGER NOT NULL,
    created TIMESTAMP NOT NULL
);

-- One prompt with two (pairwise) or N (ranking) responses, in the randomized display order.
CREATE TABLE comparison_items (
    id VARCHAR PRIMARY KEY,
    set_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    prompt JSON NOT NULL,            -- list of {role, content} turns before the responses
    responses JSON NOT NULL          -- list of {source, text}; index 0 is shown as A
);

CREATE TABLE comparison_assignments (
    item_id VARCHAR NOT NULL,
    annotator VARCHAR NOT NULL,
    set_id VARCHAR NOT NULL,
    skipped TIMESTAMP,               -- last skip: skipped items come back last
    PRIMARY KEY (item_id, annotator)
);

-- Every judgement, with who made it and when. verdict: 'A' | 'B' | 'tie' | 'both_bad' |
-- 'inconsistent' (a judge that changed its mind when positions were swapped) | 'ranking'.
CREATE TABLE comparisons (
    id VARCHAR PRIMARY KEY,
    set_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    annotator VARCHAR NOT NULL,
    source VARCHAR NOT NULL,         -- 'human' | 'judge'
    verdict VARCHAR NOT NULL,
    ranking JSON,                    -- ranking mode: response indices, best first
    winner VARCHAR,                  -- the winning source id (pairwise A/B), else NULL
    rationale VARCHAR,
    detail JSON,                     -- judge: both raw verdicts; channel: label-studio ids
    job_id VARCHAR,
    created TIMESTAMP NOT NULL
);

CREATE TABLE preference_sets (
    id VARCHAR PRIMARY KEY,
    name VARCHAR UNIQUE NOT NULL,
    created TIMESTAMP NOT NULL
);

CREATE TABLE preference_set_versions (
    id VARCHAR PRIMARY KEY,
    pref_set_id VARCHAR NOT NULL,
    number INTEGER NOT NULL,
    parent_version_id VARCHAR,
    created TIMESTAMP NOT NULL,
    hash VARCHAR NOT NULL,
    n_pairs INTEGER NOT NULL,
    note VARCHAR,
    UNIQUE (pref_set_id, number)
);

-- Immutable pairs keyed by the content hash of (prompt, chosen, rejected).
CREATE TABLE preference_pairs (
    id VARCHAR PRIMARY KEY,
    prompt JSON NOT NULL,            -- list of {role, content}
    chosen JSON NOT NULL,            -- list of assistant turns
    rejected JSON NOT NULL,
    origin JSON,                     -- comparison ids, or import file and row
    created TIMESTAMP NOT NULL
);

CREATE TABLE preference_version_pairs (
    version_id VARCHAR NOT NULL,
    pair_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (version_id, position)
);
