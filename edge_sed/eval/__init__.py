"""Measuring detectors: clip and event metrics, scoring streams, `edge-sed evaluate`, host
latency benchmarks and the statistics the tables report."""
