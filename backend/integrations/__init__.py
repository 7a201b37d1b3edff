"""Each external system behind one module: `llm` (every OpenAI-compatible or local model
client), `labelstudio` (its client, local server and webhook receiver)."""
