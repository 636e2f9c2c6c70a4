"""CTCAE grading of laboratory results."""
