"""Who calls (credentials, API keys, JWTs, identity), what they may do (permissions), and how
often (rate limits)."""
