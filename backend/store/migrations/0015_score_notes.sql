-- A score's note: the LLM judge's one-sentence rationale for its rating (judge and judge_flaw
-- scores), shown to reviewers next to the example so they see why it was flagged.
ALTER TABLE scores ADD COLUMN note VARCHAR;
