-- Each training run's metrics pre-aggregated into fixed step buckets (widths 8, 64, 512, 4096,
-- 32768 steps), kept current at ingest by backend/store/metric_buckets.py, so the Compare page's
-- curves read a few hundred rows per run instead of scanning raw metrics. A bucket holds steps
-- [bucket * width, (bucket + 1) * width) of one metric: count, sum of steps, and sum / min / max
-- of the finite values. The statement after CREATE backfills runs ingested before this table
-- existed (same SQL as metric_buckets.rebuild).
CREATE TABLE metric_buckets (
    job_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    width INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    n BIGINT NOT NULL,
    sum_x DOUBLE NOT NULL,         -- sum of the steps (mean x = sum_x / n)
    sum_y DOUBLE NOT NULL,
    min_y DOUBLE NOT NULL,
    max_y DOUBLE NOT NULL,
    PRIMARY KEY (job_id, name, width, bucket)
);
INSERT INTO metric_buckets (job_id, name, width, bucket, n, sum_x, sum_y, min_y, max_y)
WITH fine AS (
    SELECT m.job_id, m.name, m.step // 8 AS bucket, count(*) AS n,
           sum(m.step::DOUBLE) AS sum_x, sum(m.value) AS sum_y, min(m.value) AS min_y,
           max(m.value) AS max_y
    FROM (SELECT job_id, step, name, value FROM metrics) m
        SEMI JOIN run_summary s ON s.run_id = m.job_id
    WHERE m.step >= 0 AND m.name IS NOT NULL AND isfinite(m.value)
    GROUP BY m.job_id, m.name, m.step // 8
)
SELECT f.job_id, f.name, w.width, f.bucket // (w.width // 8) AS bucket, sum(f.n) AS n,
       sum(f.sum_x) AS sum_x, sum(f.sum_y) AS sum_y, min(f.min_y) AS min_y,
       max(f.max_y) AS max_y
FROM fine f, (SELECT unnest([8, 64, 512, 4096, 32768]) AS width) w
GROUP BY f.job_id, f.name, w.width, f.bucket // (w.width // 8)
ORDER BY f.job_id, f.name, w.width, bucket;
