"""Sending backends for campaign messages: the outbox (default), email, a signed webhook and WeCom
customer broadcasts. The sending engine uses ``gateway_for(medium).send(messages)``; see ``base``."""

from __future__ import annotations

from .base import Gateway, OutgoingMessage, SendResult, gateway_for

__all__ = ["Gateway", "OutgoingMessage", "SendResult", "gateway_for"]
