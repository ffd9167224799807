"""Tables that keep the service running: API keys, the audit log, rate-limit buckets."""
