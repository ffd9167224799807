"""The GraphQL server of the Strands session store."""
