"""CSV for the analytics API: ``?format=csv`` (or ``Accept: text/csv``) selects this renderer."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer

from analytics import exports


class CSVRenderer(BaseRenderer):
    """Renders an ``exports.Table`` (or a list of them) as UTF-8 CSV with a BOM, for Excel."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        return exports.csv_text(data).encode(self.charset)
