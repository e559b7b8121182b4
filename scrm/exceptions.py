"""Exceptions that the services of every app raise and the API and pages translate into responses."""

from __future__ import annotations


class ConflictError(Exception):
    """The request clashes with a row that already exists (an order number recorded for another contact,
    the same key with different content). The API answers 409 and names ``field``."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
