"""Drift detection on production data and the retraining it triggers."""
