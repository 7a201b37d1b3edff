-- The rows an import skipped (`ftstudio dataset import --skip-invalid`, or the import form's
-- checkbox), kept beside the version they were left out of:
-- {"file": name, "unit": "line" | "row", "invalid": n, "rows": [{"line": n, "reason": why}]}.
ALTER TABLE dataset_versions ADD COLUMN skipped JSON;
