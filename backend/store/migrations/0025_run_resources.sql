-- What a training run used beside what was estimated (backend/train/measure.py writes it at the
-- end of training): the memory estimate in bytes with its parts, the measured peak (CUDA peak
-- allocated, or the process's peak RSS on CPU), mean tokens/s and, on CUDA, mean MFU.
CREATE TABLE run_resources (
    run_id VARCHAR PRIMARY KEY,
    device VARCHAR,
    estimate_bytes BIGINT,
    estimate JSON,                 -- parts in bytes: weights, lora, gradients, optimizer, ...
    peak_bytes BIGINT,
    peak_kind VARCHAR,             -- cuda_max_allocated | cpu_peak_rss
    error DOUBLE,                  -- (estimate - peak) / peak
    tokens_per_s DOUBLE,
    mfu DOUBLE,
    t DOUBLE
);
