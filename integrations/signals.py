"""The app's own signals (definitions only: receivers live in ``receivers``)."""

from __future__ import annotations

from django.dispatch import Signal

health_changed = Signal()
"""Sent when an integration's health changes: ``(sender, integration, account, old, new,
call_log)``: ``old``/``new`` are health states, ``account`` None for the integration
itself, ``call_log`` the test call's row that caused the change."""
