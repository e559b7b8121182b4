"""Dashboard pages of the WeCom connection (企业微信), mounted at /wecom/: channel live codes (渠道活码) in
``live_codes`` and the connection page (settings, token, callback inbox, sync, staff mapping) in
``connection``; ``common`` holds what they share. The public callback endpoint is ``wecom.views_callback``."""

from .connection import connection, connection_token, staff_account_map, sync_now
from .intake import intake
from .live_codes import (
    live_code_archive,
    live_code_create,
    live_code_detail,
    live_code_edit,
    live_code_list,
    live_code_qr,
    live_code_simulate_scan,
)

__all__ = [
    "connection",
    "connection_token",
    "intake",
    "live_code_archive",
    "live_code_create",
    "live_code_detail",
    "live_code_edit",
    "live_code_list",
    "live_code_qr",
    "live_code_simulate_scan",
    "staff_account_map",
    "sync_now",
]
