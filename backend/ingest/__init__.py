"""Ingestion: job folders and the review webhook inbox into the store. It sits above both the
store and the job queue (the store never reads job folders; jobs never open the database).

`jobs.ingest_all` is one pass; `loop.Ingestor` runs passes on the dashboard's background thread,
then the steps that follow new data (trigger rules, the folder watch)."""
