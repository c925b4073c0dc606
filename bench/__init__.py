"""Benchmarks that print numbers (they never assert timings); see docs/performance.md."""
