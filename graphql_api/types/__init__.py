"""GraphQL types, one module each."""
