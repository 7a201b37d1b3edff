-- Where each run trained: its executor (local, accelerate or ray) and how many processes
-- trained it together (world size), as reported by the run's rank 0 in run.jsonl.
ALTER TABLE runs ADD COLUMN executor VARCHAR;
ALTER TABLE runs ADD COLUMN world_size INTEGER;
