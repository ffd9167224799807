"""Storage for Strands sessions in PostgreSQL: models, engine, queries and migrations."""
