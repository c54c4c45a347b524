"""A minimal, real OpenID Connect provider for tests, served on 127.0.0.1 in a thread.

It speaks the authorization code flow over HTTP like any identity provider: a discovery
document, a JWKS with an RS256 key, /authorize (no login page: it answers at once for the
identity set with `sign_in_as`, redirecting back with a code and the state), /token
(client authentication, single-use codes, redirect_uri and PKCE checks; answers with an
access token and a signed ID token) and /userinfo. The portal reaches it over real HTTP, so
nothing of the portal or of allauth is patched.

    with FakeIdentityProvider(client_id="portal", client_secret="s3cret") as idp:
        idp.sign_in_as(sub="u1", email="ada@example.com", name="Ada", groups=["Employees"])
        ... the portal's sign-in redirects the browser to idp.issuer + "/authorize?..." ...
        callback_url = idp.authorize(url)  # what the browser would be redirected to
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class Grant:
    """What /authorize handed out with a code, checked again at /token."""

    claims: dict
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class FakeIdentityProvider:
    client_id: str
    client_secret: str
    # Redirect URIs the client registered; empty accepts any (the test checks the one sent).
    redirect_uris: tuple[str, ...] = ()
    lifetime: int = 300
    identity: dict | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    # Overrides applied to the next ID tokens (e.g. {"aud": "someone-else"}).
    id_token_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self._codes: dict[str, Grant] = {}
        self._access_tokens: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- Life cycle --------------------------------------------------------------------------

    def start(self) -> FakeIdentityProvider:
        provider = self

        class Handler(_Handler):
            idp = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FakeIdentityProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- What the test controls --------------------------------------------------------------

    def sign_in_as(
        self,
        *,
        sub: str,
        email: str | None,
        name: str | None = None,
        email_verified=True,
        **claims,
    ) -> None:
        """The person "signed in at the identity provider" that /authorize will vouch for."""
        identity = {"sub": sub, **claims}
        if email is not None:
            identity["email"] = email
        if email_verified is not None:
            identity["email_verified"] = email_verified
        if name is not None:
            identity["name"] = name
        self.identity = identity

    def authorize(self, url: str) -> str:
        """Open the authorize URL as a browser would; return where the IdP redirects it."""
        assert url.startswith(f"{self.issuer}/authorize?"), url
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        try:
            opener.open(url, timeout=10)
        except urllib.error.HTTPError as answer:
            if answer.code == 302:
                return answer.headers["Location"]
            raise
        raise AssertionError("the identity provider did not redirect back")

    # --- Protocol ----------------------------------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "name", "groups", "nonce"],
        }

    def jwks(self) -> dict:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def issue_code(self, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        """/authorize: the redirect URI and the parameters to send back to it."""
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            raise _BadRequest("unauthorized_client")
        if self.redirect_uris and redirect_uri not in self.redirect_uris:
            raise _BadRequest("invalid_redirect_uri")
        back = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return redirect_uri, {**back, "error": "invalid_request"}
        if self.identity is None:
            return redirect_uri, {**back, "error": "access_denied"}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = Grant(
                claims=dict(self.identity),
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                nonce=query.get("nonce"),
                code_challenge=query.get("code_challenge"),
                code_challenge_method=query.get("code_challenge_method"),
            )
        return redirect_uri, {**back, "code": code}

    def exchange_code(self, form: dict[str, str], authorization: str | None) -> dict:
        """/token: check the client and the code; answer with the tokens."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            raise _BadRequest("invalid_client", status=401)
        if form.get("grant_type") != "authorization_code":
            raise _BadRequest("unsupported_grant_type")
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            raise _BadRequest("invalid_grant")
        if grant.code_challenge:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode("ascii")).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
            if grant.code_challenge_method != "S256" or expected != grant.code_challenge:
                raise _BadRequest("invalid_grant")
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[access_token] = grant.claims
        now = int(time.time())
        id_token = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + self.lifetime,
            "auth_time": now,
            **grant.claims,
        }
        if grant.nonce:
            id_token["nonce"] = grant.nonce
        id_token |= self.id_token_overrides
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": "openid profile email",
            "id_token": jwt.encode(
                id_token, self._key, algorithm="RS256", headers={"kid": self.kid}
            ),
        }

    def userinfo(self, authorization: str | None) -> dict:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            claims = self._access_tokens.get(token)
        if claims is None:
            raise _BadRequest("invalid_token", status=401)
        return dict(claims)


class _BadRequest(Exception):
    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class _Handler(BaseHTTPRequestHandler):
    idp: FakeIdentityProvider

    def log_message(self, format, *args) -> None:  # quiet test output
        pass

    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.idp.requests.append((method, url.path))
        authorization = self.headers.get("Authorization")
        try:
            if method == "GET" and url.path == "/.well-known/openid-configuration":
                self._send_json(200, self.idp.discovery())
            elif method == "GET" and url.path == "/jwks":
                self._send_json(200, self.idp.jwks())
            elif method == "GET" and url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                redirect_uri, params = self.idp.issue_code(query)
                self.send_response(302)
                self.send_header("Location", f"{redirect_uri}?{urlencode(params)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif method == "POST" and url.path == "/token":
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                self._send_json(200, self.idp.exchange_code(form, authorization))
            elif method in {"GET", "POST"} and url.path == "/userinfo":
                self._send_json(200, self.idp.userinfo(authorization))
            else:
                self._send_json(404, {"error": "not_found"})
        except _BadRequest as refused:
            self._send_json(refused.status, {"error": refused.error})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")
