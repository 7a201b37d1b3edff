"""Evaluation of runs: held-out loss and perplexity, generations on eval prompts."""
