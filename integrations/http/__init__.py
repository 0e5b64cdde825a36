"""All outbound HTTP: one session factory, token auth, bounds and the address guard."""

from .session import IntegrationSession, create_session

__all__ = ["IntegrationSession", "create_session"]
