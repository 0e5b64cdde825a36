"""One exception tree, rooted at IntegrationError.

Exception messages must not contain sensitive information: no key, secret, token or
assertion ever reaches ``str(exc)``.
"""

from django.core.exceptions import ImproperlyConfigured
from requests import ConnectionError as RequestsConnectionError
from requests import HTTPError, RequestException, Timeout


class IntegrationError(Exception):
    """Base of every error this app raises."""


class IntegrationConfigurationError(IntegrationError, ImproperlyConfigured):
    """A setting is missing or malformed; the message names the setting."""


class IntegrationNotFound(IntegrationError, LookupError):
    """No integration has this slug."""


class IntegrationDisabled(IntegrationError):
    """The integration exists but is switched off."""


class AccountNotFound(IntegrationError, LookupError):
    """The integration has no account with this key (docs/reference.md, Accounts)."""


class AccountDisabled(IntegrationError):
    """The account exists but is switched off: it fails like a disabled integration."""


class InvalidConfiguration(IntegrationError, ValueError):
    """Configuration input is invalid; ``field`` names where."""

    def __init__(self, message: str, *, field: str = "", entry: str = "") -> None:
        self.field = field
        self.entry = entry
        prefix = ": ".join(part for part in (entry, field) if part)
        # One line, whatever it quotes (an option name from a file may hold a line break).
        super().__init__(one_line(f"{prefix}: {message}" if prefix else message))
        self.message = one_line(message)


def one_line(text: str) -> str:
    """``text`` with CR, LF and other control characters escaped (log injection)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


class SecretDecryptionError(IntegrationError):
    """A stored secret cannot be decrypted with the configured key ring (fail closed)."""


class SecretUnavailable(InvalidConfiguration):
    """A configured secret source (environment variable, file) cannot be read."""


class TokenError(IntegrationError):
    """Minting or obtaining a token failed."""


class TokenEndpointError(TokenError, HTTPError):
    """A token endpoint refused; carries the OAuth ``error`` and ``error_description``."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str = "",
        error_description: str = "",
    ) -> None:
        self.status_code = status_code
        self.error = error
        self.error_description = error_description
        super().__init__(message)


class TokenEndpointUnreachable(TokenError, RequestsConnectionError):
    """A token endpoint could not be reached or did not answer (also a
    requests.ConnectionError, so callers catching requests' errors catch it)."""


class RequestRefused(IntegrationError, ValueError):
    """A request was refused before it left: bad URL, blocked address, other host."""


class ResponseTooLarge(IntegrationError, RequestException):
    """The response body exceeded the size cap (also a requests.RequestException)."""


class DeadlineExceeded(IntegrationError, Timeout):
    """The call ran past its overall deadline (also a requests.Timeout)."""


class CircuitOpen(IntegrationError, RequestException):
    """The integration's circuit breaker is open: the call was not sent (security.md #19)."""


class SigningError(IntegrationError):
    """A signer (local key, PKCS#11 token, KMS) could not sign or read its public key:
    unreachable, refused, misconfigured. The message says which and never carries a PIN,
    credential or key material (security.md #32). ``field`` names the signer setting at
    fault when one is (``pin``, ``key_label``, ``key_id``), else ""."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class SignerUnreachable(SigningError):
    """The signing device could not be reached (network, timeout, token removed): the
    configuration may be right, so a save is not refused for it; a call still fails."""


class DiscoveryError(IntegrationError):
    """Authorization server metadata (RFC 8414, OpenID Connect Discovery) could not be
    read or was refused; ``issuer`` is the configured one, ``url`` what was read."""

    def __init__(self, message: str, *, issuer: str = "", url: str = "") -> None:
        self.issuer = issuer
        self.url = url
        super().__init__(message)
