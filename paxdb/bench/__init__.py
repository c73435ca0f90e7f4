"""Load generators and baselines. Speed is measured here, never by timed tests."""
