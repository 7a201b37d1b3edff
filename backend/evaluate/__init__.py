"""Evaluation of runs: held-out loss and perplexity, generations on eval prompts; eval suites
with their scorers and judges, the judge's agreement with people, the promotion gate, and
lm-evaluation-harness tasks."""
