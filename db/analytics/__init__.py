"""What dashboards ask: one filter, listings, search and statistics."""
