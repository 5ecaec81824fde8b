"""Measurement: throughput, memory, page-cache ceilings, order statistics (arrival order, coverage, fingerprints,
shuffle quality), epoch boundaries, the benchmark and the peer libraries it compares. A new number belongs here."""
