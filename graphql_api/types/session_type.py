"""The SessionType enum, apart from Session so that filters and inputs need not import the type graph."""

from enum import Enum

import strawberry


@strawberry.enum(description="Kinds of session; Strands has one today.")
class SessionType(Enum):
    AGENT = "AGENT"
