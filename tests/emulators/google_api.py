"""What the Google API emulators share: Google's OAuth token endpoint, service-account keys and
Google's JSON error format.

Auth is real: `service_account_file()` writes a service-account JSON with a fresh RSA key;
google-auth signs JWTs with it, either sent straight as bearer tokens (self-signed JWT) or
exchanged at the emulator's token endpoint (`token_uri`). Both are verified against the public
key, and a request is known by the service account's email.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.emulators.cloud_http import ApiError, JsonServer, Reply, Request, Served

SERVICE_ACCOUNT = "pwrun-inventory@pwrun-test.iam.gserviceaccount.com"
UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential.",
        "errors": [
            {
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }
        ],
        "status": "UNAUTHENTICATED",
    }
}


def google_error(code: int, message: str, reason: str, status: str) -> ApiError:
    """An error reply in Google's JSON API format."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }
    return ApiError(code, body)


def b64decode(part: str) -> bytes:
    """Decode unpadded URL-safe base64 (JWT parts, page tokens)."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class GoogleApi(Served):
    """A Google API server with a token endpoint; subclasses add their routes to `server`."""

    def __init__(self) -> None:
        self.server = JsonServer()
        self.keys: dict[str, rsa.RSAPublicKey] = {}  # private_key_id -> public key
        self.tokens: dict[str, str] = {}  # access token -> service account email
        self.server.route("POST", r"/token", self._token)

    def service_account_file(
        self, directory: Path, *, trusted: bool = True, email: str = SERVICE_ACCOUNT
    ) -> Path:
        """Write a service-account key file (0600); an untrusted one is unknown to the server."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        if trusted:
            self.keys[key_id] = key.public_key()
        info = {
            "type": "service_account",
            "project_id": "pwrun-test",
            "private_key_id": key_id,
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": email,
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.url}/auth",
            "token_uri": f"{self.url}/token",
        }
        path = directory / f"sa-{key_id[:8]}{'' if trusted else '-untrusted'}.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(info))
        return path

    def _verify_jwt(self, token: str) -> str | None:
        """The issuer of a JWT signed (RS256) by a known service-account key and not expired."""
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(b64decode(header_b64))
            payload = json.loads(b64decode(payload_b64))
            public_key = self.keys[header["kid"]]
            public_key.verify(
                b64decode(signature_b64),
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, KeyError, InvalidSignature):
            return None
        if header.get("alg") != "RS256" or float(payload.get("exp", 0)) <= time.time():
            return None
        return str(payload.get("iss", ""))

    def identity(self, request: Request) -> str:
        """The service account a request is made by; a 401 reply when it has none."""
        token = request.bearer
        who = token and (self.tokens.get(token) or self._verify_jwt(token))
        if not who:
            realm = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
            raise ApiError(401, UNAUTHENTICATED, realm)
        return who

    def _token(self, request: Request, _: Any) -> Reply:
        form = request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return (
                400,
                {"error": "unsupported_grant_type", "error_description": "Invalid grant"},
                {},
            )
        who = self._verify_jwt(form.get("assertion", ""))
        if not who:
            return (
                400,
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                {},
            )
        token = "ya29." + secrets.token_urlsafe(32)
        self.tokens[token] = who
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, {}
