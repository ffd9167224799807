"""GraphQL subscriptions' machinery: ``hub`` fans the listener's notices out to this process's
subscribers, ``streams`` turns a subscriber's wake-ups into rows read from its cursor, and
``connection`` authenticates a websocket and keeps it to its credentials."""
