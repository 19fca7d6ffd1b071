"""Realistic call traffic from the producer's side, for the demo, tests and benchmarks."""
