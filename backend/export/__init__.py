"""Shipping a run: merged safetensors, GGUF for llama.cpp / Ollama, and the serve commands,
each verified against the run's base model and adapter before it is marked done."""
