-- One row per training run (id = the train job's id), kept current at ingest by
-- backend/store/run_summary.py, so the Compare page's runs table and leaderboard never scan
-- raw metrics. "final" = latest by (t, step); the *_key columns hold that position so the next
-- ingested chunk can tell whether it is newer. The statements after CREATE backfill runs that
-- were ingested before this table existed (same SQL as run_summary.rebuild).
CREATE TABLE run_summary (
    run_id VARCHAR PRIMARY KEY,
    title VARCHAR,
    group_id VARCHAR,              -- sweep group (jobs.group_id)
    state VARCHAR,                 -- the job's state, refreshed at every ingest pass
    created TIMESTAMP,
    method VARCHAR,
    base_model VARCHAR,
    dataset VARCHAR,
    dataset_version_id VARCHAR,
    learning_rate DOUBLE,
    lora_r INTEGER,
    lora_alpha INTEGER,
    lora_dropout DOUBLE,
    batch_size INTEGER,
    grad_accum INTEGER,
    epochs DOUBLE,
    max_steps INTEGER,
    warmup_ratio DOUBLE,
    max_length INTEGER,
    seed INTEGER,
    quant VARCHAR,
    config JSON,
    first_t DOUBLE,                -- unix seconds of the first and last metric
    last_t DOUBLE,
    last_step BIGINT,
    n_points BIGINT,
    best_eval_loss DOUBLE,
    best_eval_step BIGINT,
    final_eval_loss DOUBLE,
    final_eval_key STRUCT(t DOUBLE, s BIGINT),
    final_train_loss DOUBLE,
    final_train_key STRUCT(t DOUBLE, s BIGINT),
    tokens_seen DOUBLE,
    tokens_key STRUCT(t DOUBLE, s BIGINT),
    tps_sum DOUBLE,                -- sum and count of tokens_per_s reports (mean = sum / n)
    tps_n BIGINT,
    metric_names VARCHAR[],
    updated TIMESTAMP
);

INSERT INTO run_summary (run_id, title, group_id, state, created, method, base_model, dataset,
    dataset_version_id, learning_rate, lora_r, lora_alpha, lora_dropout, batch_size, grad_accum,
    epochs, max_steps, warmup_ratio, max_length, seed, quant, config, updated)
SELECT j.id, j.title, j.group_id, j.state, j.created, json_extract_string(j.spec, '$.method'),
    json_extract_string(j.spec, '$.base_model'), json_extract_string(j.spec, '$.dataset'),
    json_extract_string(j.spec, '$.dataset_version_id'), TRY_CAST(json_extract_string(j.spec,
    '$.learning_rate') AS DOUBLE), TRY_CAST(json_extract_string(j.spec, '$.lora_r') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.lora_alpha') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.lora_dropout') AS DOUBLE),
    TRY_CAST(json_extract_string(j.spec, '$.batch_size') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.grad_accum') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.epochs') AS DOUBLE),
    TRY_CAST(json_extract_string(j.spec, '$.max_steps') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.warmup_ratio') AS DOUBLE),
    TRY_CAST(json_extract_string(j.spec, '$.max_length') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.seed') AS INTEGER),
    TRY_CAST(json_extract_string(j.spec, '$.quant') AS VARCHAR), j.spec, now()
FROM jobs j WHERE j.kind = 'train'
ON CONFLICT (run_id) DO UPDATE SET title = excluded.title, group_id = excluded.group_id, state =
    excluded.state, created = excluded.created, method = excluded.method, base_model =
    excluded.base_model, dataset = excluded.dataset, dataset_version_id =
    excluded.dataset_version_id, learning_rate = excluded.learning_rate, lora_r = excluded.lora_r,
    lora_alpha = excluded.lora_alpha, lora_dropout = excluded.lora_dropout, batch_size =
    excluded.batch_size, grad_accum = excluded.grad_accum, epochs = excluded.epochs, max_steps =
    excluded.max_steps, warmup_ratio = excluded.warmup_ratio, max_length = excluded.max_length,
    seed = excluded.seed, quant = excluded.quant, config = excluded.config, updated =
    excluded.updated;

UPDATE run_summary AS s SET
    first_t = least(s.first_t, a.first_t),
    last_t = greatest(s.last_t, a.last_t),
    last_step = greatest(s.last_step, a.last_step),
    n_points = coalesce(s.n_points, 0) + a.n_points,
    best_eval_step = CASE WHEN a.best_eval < coalesce(s.best_eval_loss, 'inf'::DOUBLE)
                          THEN a.best_eval_step ELSE s.best_eval_step END,
    best_eval_loss = least(s.best_eval_loss, a.best_eval),
    final_eval_loss = CASE WHEN (a.final_eval_key >= s.final_eval_key OR s.final_eval_key IS NULL)
        THEN a.final_eval
                           ELSE s.final_eval_loss END,
    final_eval_key = CASE WHEN (a.final_eval_key >= s.final_eval_key OR s.final_eval_key IS NULL)
        THEN a.final_eval_key
                          ELSE s.final_eval_key END,
    final_train_loss = CASE WHEN (a.final_train_key >= s.final_train_key OR s.final_train_key IS
        NULL) THEN a.final_train
                            ELSE s.final_train_loss END,
    final_train_key = CASE WHEN (a.final_train_key >= s.final_train_key OR s.final_train_key IS
        NULL) THEN a.final_train_key
                           ELSE s.final_train_key END,
    tokens_seen = CASE WHEN (a.tokens_key >= s.tokens_key OR s.tokens_key IS NULL) THEN a.tokens
        ELSE s.tokens_seen END,
    tokens_key = CASE WHEN (a.tokens_key >= s.tokens_key OR s.tokens_key IS NULL) THEN a.tokens_key
        ELSE s.tokens_key END,
    tps_sum = coalesce(s.tps_sum, 0) + coalesce(a.tps_sum, 0),
    tps_n = coalesce(s.tps_n, 0) + a.tps_n,
    metric_names = list_sort(list_distinct(list_concat(coalesce(s.metric_names, []), a.names))),
    updated = now()
FROM (
SELECT job_id, min(t) AS first_t, max(t) AS last_t, max(step) AS last_step,
       count(*) AS n_points,
       min(value) FILTER (WHERE name = 'eval_loss' AND isfinite(value)) AS best_eval,
       arg_min(step, {'v': value, 's': step})
           FILTER (WHERE name = 'eval_loss' AND isfinite(value)) AS best_eval_step,
       arg_max(value, {'t': coalesce(t, -1.0)::DOUBLE, 's': step}) FILTER (WHERE name = 'eval_loss'
           AND isfinite(value)) AS final_eval, max({'t': coalesce(t, -1.0)::DOUBLE, 's': step})
           FILTER (WHERE name = 'eval_loss' AND isfinite(value)) AS final_eval_key,
       arg_max(value, {'t': coalesce(t, -1.0)::DOUBLE, 's': step}) FILTER (WHERE name = 'loss' AND
           isfinite(value)) AS final_train, max({'t': coalesce(t, -1.0)::DOUBLE, 's': step}) FILTER
           (WHERE name = 'loss' AND isfinite(value)) AS final_train_key,
       arg_max(value, {'t': coalesce(t, -1.0)::DOUBLE, 's': step}) FILTER (WHERE name =
           'tokens_seen' AND isfinite(value)) AS tokens, max({'t': coalesce(t, -1.0)::DOUBLE, 's':
           step}) FILTER (WHERE name = 'tokens_seen' AND isfinite(value)) AS tokens_key,
       sum(value) FILTER (WHERE name = 'tokens_per_s' AND isfinite(value)) AS tps_sum,
       count(*) FILTER (WHERE name = 'tokens_per_s' AND isfinite(value)) AS tps_n,
       list(DISTINCT name) AS names
FROM (SELECT job_id, step, name, value, t FROM metrics) GROUP BY job_id
) AS a
WHERE s.run_id = a.job_id;
