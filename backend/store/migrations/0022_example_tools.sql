-- The tools a tool-calling example may call (OpenAI function definitions, canonical JSON);
-- NULL for a plain conversation. Its turns keep tool_calls, tool_call_id and name in messages.
ALTER TABLE examples ADD COLUMN tools JSON;
