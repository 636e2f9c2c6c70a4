"""Dose-limiting toxicity screening, evaluability, adjudication and stopping rules."""
