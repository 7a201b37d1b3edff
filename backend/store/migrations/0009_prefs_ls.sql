-- Label Studio as a second channel for comparison sets: the project a set was pushed to and the
-- task of each item. Judgements pulled back live in `comparisons` with id `ls:<project>:<annotation>`
-- and the Label Studio ids in their `detail`, so pulling again updates instead of duplicating.
CREATE TABLE comparison_set_ls (
    set_id VARCHAR PRIMARY KEY,
    url VARCHAR NOT NULL,
    project_id INTEGER NOT NULL,
    pushed TIMESTAMP NOT NULL
);

CREATE TABLE comparison_item_ls (
    item_id VARCHAR PRIMARY KEY,
    set_id VARCHAR NOT NULL,
    task_id INTEGER NOT NULL
);
