-- An import in progress: each chunk's examples are stored (and committed) as it is read, and
-- their place in the file is kept here under the import's stage id until the version that
-- holds them is written in one transaction; then (or when the import fails) the rows go.
-- Committing a chunk at a time keeps an import's memory flat however large the file.
CREATE TABLE import_stage (
    stage_id VARCHAR NOT NULL,
    pos BIGINT NOT NULL,              -- the example's place among the file's valid rows
    example_id VARCHAR NOT NULL,
    parent_id VARCHAR
);
