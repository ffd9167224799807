"""The root Query and Mutation types."""
