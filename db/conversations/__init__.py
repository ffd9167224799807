"""Sessions, agents and messages: their writes, batch reads, and the facts read from a message."""
