"""Checks on a request before and while it runs: document size and shape, arguments, cost, and the
answer's bytes."""
