"""The control API: an authenticated HTTP/JSON server inside the daemon's event loop.

It reaches the engine only through ``procward.engine.Control``.
"""

from procward.api._server import API_FILE, ApiServer
from procward.api._tokens import ADMIN_TOKEN_FILE, TOKENS_FILE, TokenInfo, TokenStore

__all__ = ["ADMIN_TOKEN_FILE", "API_FILE", "TOKENS_FILE", "ApiServer", "TokenInfo", "TokenStore"]
