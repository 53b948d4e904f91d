"""The Microsoft Entra ID side of the emulator: client-credentials tokens and their checks.

Serves what ``msal.ConfidentialClientApplication`` reads (the tenant's OpenID configuration, the
signing keys, the optional instance-discovery document) and the OAuth2 token endpoint, which takes a
client secret or a certificate's signed client assertion, and checks the bearer tokens the Web API
receives (reference section 1). msal accepts only https
authorities, so a client that uses msal talks to an emulator started with TLS (see ``tls.py``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import time
import uuid
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from dataverse_emulator.config import ClientCertificate, EmulatorConfig
from dataverse_emulator.errors import DataverseError

_ALGORITHM = "RS256"
_DEFAULT_SUFFIX = "/.default"
_UNAUTHORIZED_CODE = "0x0"  # reference 1.6 gives no body; framework-level errors use 0x0 (8.1)
_CACHE_LIMIT = 4096
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Entra's docs name RS256 with x5t and, now, PS256 with x5t#S256; msal sends either.
_ASSERTION_ALGORITHMS = frozenset({"RS256", "PS256"})
_TOKEN_PATHS = ("v2.0/token", "token")  # an assertion's aud: the v2 or the v1 token endpoint


class TokenService:
    """Issues RS256 access tokens to the configured clients and validates them on the Web API."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._kid = _b64url(hashlib.sha256(str(numbers.n).encode()).digest()[:15])
        self._jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self._kid,
            "alg": _ALGORITHM,
            "n": _b64url(_int_bytes(numbers.n)),
            "e": _b64url(_int_bytes(numbers.e)),
        }
        # Verifying RS256 on every request is the costliest step of a small request.
        self._verified: dict[str, tuple[str, float, str]] = {}
        # (client id, jti) of accepted client assertions -> when the record may be dropped.
        self._seen_assertions: dict[tuple[str, str], float] = {}

    def routes(self) -> list[BaseRoute]:
        """The Entra ID endpoints msal uses, under ``/{tenant}/`` (plus instance discovery)."""
        return [
            Route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                self._openid_configuration,
                methods=["GET"],
            ),
            Route("/{tenant}/discovery/v2.0/keys", self._keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route("/common/discovery/instance", self._instance_discovery, methods=["GET"]),
        ]

    def issue(self, client_id: str, audience: str, *, lifetime_s: int | None = None) -> str:
        """A signed access token for ``client_id`` and the resource ``audience``.

        ``lifetime_s`` defaults to the configured token lifetime; a negative value gives a token
        that is already expired (for tests of the 401 path).
        """
        lifetime = self._config.token_lifetime_s if lifetime_s is None else lifetime_s
        return self._sign(client_id, _resource(audience), _origin(audience), lifetime)

    def _sign(self, client_id: str, audience: str, authority_base: str, lifetime: int) -> str:
        now = int(time.time())
        issuer = f"{authority_base}/{self._config.tenant}/v2.0"
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._config.tenant}/{client_id}"))
        claims = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client_id,
            "appidacr": "1",
            "azp": client_id,
            "azpacr": "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": self._config.tenant,
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "2.0",
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"kid": self._kid})

    def client_of(self, authorization_header: str | None, *, base_url: str | None = None) -> str:
        """The client id a Web API request is made as, from its ``Authorization`` header.

        ``base_url`` is the scheme and host the request came to (e.g. ``https://127.0.0.1:8443``);
        it names the authority in the challenge and, without a configured organization URL, is
        the audience a token must carry. Raises ``DataverseError(401)`` with a
        ``WWW-Authenticate: Bearer authorization_uri=...`` challenge when the header is missing
        or the token is malformed, badly signed, for another resource, or expired.
        """
        if not authorization_header:
            raise self._unauthorized(base_url, "The request has no bearer token.", None)
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._unauthorized(
                base_url, "The Authorization header is not a bearer token.", "invalid_request"
            )
        audiences = self._audiences(base_url)
        cached = self._verified.get(token)
        if cached is not None:
            client_id, expires, audience = cached
            if time.time() < expires and (not audiences or audience in audiences):
                return client_id
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=[_ALGORITHM],
                options={"verify_aud": False, "require": ["exp", "aud", "appid"]},
            )
        except jwt.ExpiredSignatureError:
            raise self._unauthorized(
                base_url, "The bearer token has expired.", "invalid_token"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise self._unauthorized(
                base_url, f"The bearer token is not valid: {exc}.", "invalid_token"
            ) from None
        audience = _resource(str(claims["aud"]))
        if audiences and audience not in audiences:
            raise self._unauthorized(
                base_url, f"The bearer token is for another resource: {audience}.", "invalid_token"
            )
        client_id = str(claims["appid"])
        if client_id not in self._config.clients:
            raise self._unauthorized(
                base_url, f"The client {client_id} is not an application user.", "invalid_token"
            )
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (client_id, float(claims["exp"]), audience)
        return client_id

    def _audiences(self, base_url: str | None) -> frozenset[str]:
        if self._config.organization_url:
            return frozenset({_resource(self._config.organization_url)})
        if base_url:
            return frozenset({_resource(base_url)})
        return frozenset()

    def _authority(self, base_url: str | None) -> str:
        origin = _origin(base_url or self._config.organization_url or "")
        return f"{origin}/{self._config.tenant}"

    def _unauthorized(
        self, base_url: str | None, message: str, error: str | None
    ) -> DataverseError:
        resource = _resource(self._config.organization_url or base_url or "")
        challenge = (
            f"authorization_uri={self._authority(base_url)}/oauth2/authorize, "
            f"resource_id={resource}/"
        )
        if error:
            # Dataverse's own wording; the detail goes in the body, as commas would split it here.
            challenge = (
                f"error={error}, error_description=Error during token validation!, {challenge}"
            )
        return DataverseError(
            401, _UNAUTHORIZED_CODE, message, {"WWW-Authenticate": f"Bearer {challenge}"}
        )

    async def _openid_configuration(self, request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        base = _base(request)
        if tenant != self._config.tenant:
            return _oauth_error(
                base,
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        authority = f"{base}/{tenant}"
        return JSONResponse(
            {
                "token_endpoint": f"{authority}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{authority}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": [_ALGORITHM],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{authority}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": urlsplit(base).netloc,
            }
        )

    async def _keys(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": [self._jwk]})

    async def _instance_discovery(self, request: Request) -> JSONResponse:
        # Only reached when a client points msal's instance_discovery at the emulator explicitly.
        base = _base(request)
        host = urlsplit(base).netloc
        return JSONResponse(
            {
                "tenant_discovery_endpoint": (
                    f"{base}/{self._config.tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    async def _token(self, request: Request) -> JSONResponse:
        base = _base(request)
        tenant = request.path_params["tenant"]
        if tenant != self._config.tenant:
            return _oauth_error(
                base,
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        basic_id, basic_secret = _basic_credentials(request.headers.get("authorization"))
        client_id = form.get("client_id") or basic_id
        secret = form.get("client_secret") or basic_secret
        grant_type = form.get("grant_type")
        if not grant_type:
            return _missing_parameter(base, "grant_type")
        if grant_type != "client_credentials":
            return _oauth_error(
                base,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        if not client_id:
            return _missing_parameter(base, "client_id")
        if client_id not in self._config.clients:
            return _oauth_error(
                base,
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may "
                "have sent your authentication request to the wrong tenant.",
            )
        registered = self._config.clients[client_id]
        refusal = (
            self._check_secret(base, client_id, registered, secret, form)
            if isinstance(registered, str)
            else self._check_assertion(base, tenant, client_id, registered, secret, form)
        )
        if refusal is not None:
            return refusal
        scope = form.get("scope", "").strip()
        if not scope:
            return _missing_parameter(base, "scope")
        if " " in scope or not scope.endswith(_DEFAULT_SUFFIX):
            return _oauth_error(
                base,
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = _resource(scope.removesuffix(_DEFAULT_SUFFIX))
        if resource not in self._audiences(base):
            return _oauth_error(
                base,
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You "
                "might have sent your authentication request to the wrong tenant.",
            )
        lifetime = self._config.token_lifetime_s
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": self._sign(client_id, resource, base, lifetime),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _check_secret(
        self,
        base: str,
        client_id: str,
        registered: str,
        secret: str | None,
        form: dict[str, str],
    ) -> JSONResponse | None:
        """``None`` when ``secret`` is the client's; otherwise Entra's refusal."""
        if not secret:
            if form.get("client_assertion"):
                # The app has secrets only, so no key can match the assertion's thumbprint.
                return _key_not_found(base, client_id, "no certificate is registered")
            return _no_credential(base)
        if secret != registered:
            return _invalid_secret(base, client_id)
        return None

    def _check_assertion(
        self,
        base: str,
        tenant: str,
        client_id: str,
        certificate: ClientCertificate,
        secret: str | None,
        form: dict[str, str],
    ) -> JSONResponse | None:
        """``None`` when the form carries a valid, fresh client assertion signed by the cert."""
        assertion = form.get("client_assertion")
        if not assertion or form.get("client_assertion_type") != _ASSERTION_TYPE:
            if secret:  # the app has a certificate and no secrets
                return _invalid_secret(base, client_id)
            return _no_credential(base)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return _invalid_jwt(base, "JWT token is invalid or malformed.")
        algorithm = header.get("alg")
        if algorithm not in _ASSERTION_ALGORITHMS:
            return _invalid_jwt(base, f"The JWT signing algorithm '{algorithm}' is not supported.")
        presented = {"x5t#S256": header.get("x5t#S256"), "x5t": header.get("x5t")}
        if not any(presented.values()):
            return _key_not_found(base, client_id, "the assertion names no x5t or x5t#S256")
        registered = {"x5t#S256": certificate.x5t_s256, "x5t": certificate.x5t}
        # Each thumbprint the header names, and the emulator knows, must be the registered one.
        # msal keeps the base64 padding ('='); the value is the same thumbprint either way.
        compared = [(registered[n], str(t).rstrip("=")) for n, t in presented.items() if t]
        compared = [(mine, theirs) for mine, theirs in compared if mine]
        if not compared or any(mine != theirs for mine, theirs in compared):
            used = next(t for t in presented.values() if t)
            return _key_not_found(base, client_id, f"Thumbprint of key used by client: '{used}'")
        leeway = self._config.assertion_leeway_s
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key,
                algorithms=[str(algorithm)],
                leeway=leeway,
                options={"verify_aud": False, "require": ["aud", "exp", "iss", "sub", "jti"]},
            )
        except jwt.InvalidSignatureError:
            return _oauth_error(
                base,
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            return _out_of_time(base, assertion)
        except jwt.InvalidTokenError as error:
            return _invalid_jwt(base, f"JWT token is invalid or malformed: {error}.")
        audience = claims["aud"]
        audiences = audience if isinstance(audience, list) else [audience]
        accepted = {_resource(f"{base}/{tenant}/oauth2/{path}") for path in _TOKEN_PATHS}
        if not any(isinstance(a, str) and _resource(a) in accepted for a in audiences):
            return _invalid_jwt(base, f"Token has an unexpected audience: '{audience}'.")
        if claims["iss"] != client_id or claims["sub"] != client_id:
            return _oauth_error(
                base,
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        if self._config.reject_replayed_assertions and not self._first_use(
            client_id, str(claims["jti"]), float(claims["exp"]) + leeway
        ):
            return _oauth_error(
                base,
                401,
                "invalid_client",
                50013,
                f"Assertion is invalid: the jti '{claims['jti']}' was already used. A client "
                "assertion can be presented once; sign a new one.",
            )
        return None

    def _first_use(self, client_id: str, jti: str, until: float) -> bool:
        """Records ``jti`` until ``until``; ``False`` if it is already recorded and current."""
        now = time.time()
        key = (client_id, jti)
        seen = self._seen_assertions.get(key)
        if seen is not None and seen > now:
            return False
        if len(self._seen_assertions) >= _CACHE_LIMIT:
            for stale in [k for k, expiry in self._seen_assertions.items() if expiry <= now]:
                del self._seen_assertions[stale]
        self._seen_assertions[key] = until
        return True


def _oauth_error(base: str, status: int, error: str, number: int, text: str) -> JSONResponse:
    """An Entra ID error body: ``error``, ``error_description`` starting ``AADSTS<n>:`` and ids."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{number}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {timestamp}"
    )
    return JSONResponse(
        {
            "error": error,
            "error_description": description,
            "error_codes": [number],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{base}/error?code={number}",
        },
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _no_credential(base: str) -> JSONResponse:
    return _oauth_error(
        base,
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def _invalid_secret(base: str, client_id: str) -> JSONResponse:
    return _oauth_error(
        base,
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app "
        f"'{client_id}'.",
    )


def _out_of_time(base: str, assertion: str) -> JSONResponse:
    claims = jwt.decode(assertion, options={"verify_signature": False})
    return _oauth_error(
        base,
        401,
        "invalid_client",
        700024,
        f"Client assertion is not within its valid time range. Current time: "
        f"{_entra_time(time.time())}, assertion valid from "
        f"{_entra_time(claims.get('nbf', claims.get('iat')))}, expiry time of assertion "
        f"{_entra_time(claims.get('exp'))}.",
    )


def _key_not_found(base: str, client_id: str, reason: str) -> JSONResponse:
    return _oauth_error(
        base,
        401,
        "invalid_client",
        700027,
        "The certificate with identifier used to sign the client assertion is not registered "
        f"on application. [Reason - The key was not found., {reason}, app Id '{client_id}']",
    )


def _invalid_jwt(base: str, text: str) -> JSONResponse:
    return _oauth_error(base, 401, "invalid_client", 50027, f"Invalid JWT token. {text}")


def _entra_time(value: object) -> str:
    """A timestamp as Entra writes it in AADSTS700024: ``MM/DD/YYYY HH:MM:SS`` UTC."""
    if not isinstance(value, int | float):
        return "(none)"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def _missing_parameter(base: str, name: str) -> JSONResponse:
    return _oauth_error(
        base,
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """``client_secret_basic``: RFC 6749 2.3.1 form-encodes id and secret before Base64."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None, None
    return unquote_plus(client_id), unquote_plus(secret)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""


def _resource(url: str) -> str:
    """A resource URL as tokens carry it: lower-case scheme and host, no trailing slash."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
