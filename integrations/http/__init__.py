"""All outbound HTTP: one session factory, token auth, bounds and the address guard."""

from .session import GuardedSession, IntegrationSession, create_session

__all__ = ["GuardedSession", "IntegrationSession", "create_session"]
