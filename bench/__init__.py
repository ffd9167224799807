"""Benchmarks that print ratios against references measured in the same run; ``python -m bench`` runs
the speed cases (``bench/cases/``) and prints one table."""
