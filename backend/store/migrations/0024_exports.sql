-- Exports of training runs (id = the export job's id): format (merged | gguf | ollama), GGUF
-- quantisation, where the artefact is, its size and hash, whether every check passed, the
-- checks with their numbers, the serve commands and the phases' wall times.
CREATE TABLE exports (
    id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    quant VARCHAR,
    path VARCHAR,
    size_bytes BIGINT,
    sha256 VARCHAR,
    verified BOOLEAN NOT NULL,
    checks JSON,
    commands JSON,
    wall_s JSON,
    error VARCHAR,
    created TIMESTAMP
);
