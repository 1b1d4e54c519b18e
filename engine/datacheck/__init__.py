"""Data checks: is this dataset ready to train on? Findings with evidence, a score, a report."""
