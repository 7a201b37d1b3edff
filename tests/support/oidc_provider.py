"""A real OpenID Connect provider on 127.0.0.1 for tests: discovery, an authorization
endpoint that signs in a chosen user at once (no login page), a token endpoint issuing an
RS256-signed ID token, JWKS and userinfo. What Streamlit's `st.login` talks to.

    with OIDCProvider(email="ana@example.com") as idp:
        idp.metadata_url      # server_metadata_url for .streamlit/secrets.toml [auth]
        idp.email = "bo@example.com"   # who signs in next
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

CLIENT_ID, CLIENT_SECRET = "studio-test", "studio-test-secret"


class OIDCProvider:
    def __init__(self, email: str, name: str = "Test User"):
        from joserfc.jwk import RSAKey

        self.email, self.name = email, name
        self.key_id = "k1"
        self.key = RSAKey.generate_key(2048, parameters={"kid": self.key_id})
        self.codes: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/.well-known/openid-configuration"

    def metadata(self) -> dict:
        return {
            "issuer": self.base,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "jwks_uri": f"{self.base}/jwks",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, nonce: str | None) -> str:
        from joserfc import jwt

        now = int(time.time())
        claims = {
            "iss": self.base,
            "sub": "sub-" + self.email,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 600,
            "email": self.email,
            "email_verified": True,
            "name": self.name,
        }
        if nonce:
            claims["nonce"] = nonce
        header = {"alg": "RS256", "kid": self.key_id}
        return jwt.encode(header, claims, self.key)

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                idp.requests.append(url.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, idp.metadata())
                elif url.path == "/jwks":
                    public = idp.key.as_dict(private=False)
                    self._json(200, {"keys": [{**public, "use": "sig", "alg": "RS256"}]})
                elif url.path == "/authorize":
                    if q.get("client_id") != CLIENT_ID or "redirect_uri" not in q:
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = {"nonce": q.get("nonce"), "email": idp.email}
                    target = (
                        q["redirect_uri"]
                        + "?"
                        + urlencode({"code": code, "state": q.get("state", "")})
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/userinfo":
                    self._json(200, {"sub": "sub-" + idp.email, "email": idp.email})
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                url = urlparse(self.path)
                idp.requests.append(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if url.path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    import base64
                    from urllib.parse import unquote

                    who, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                    client = (unquote(who), unquote(password))
                else:
                    client = (form.get("client_id"), form.get("client_secret"))
                if client != (CLIENT_ID, CLIENT_SECRET):
                    self._json(401, {"error": "invalid_client"})
                    return
                grant = idp.codes.pop(form.get("code", ""), None)
                if grant is None:
                    self._json(400, {"error": "invalid_grant"})
                    return
                self._json(
                    200,
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 600,
                        "id_token": idp.id_token(grant["nonce"]),
                        "scope": "openid email profile",
                    },
                )

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> OIDCProvider:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
