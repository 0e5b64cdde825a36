"""``jwt_bearer``: the signed JWT itself is the credential (reference.md: auth types)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django import forms
from django.views.decorators.debug import sensitive_variables

from .base import JWTOptions, JWTProvider, OptionsForm, Token
from .headers import header_name_problem, scheme_problem

if TYPE_CHECKING:
    import requests


class BearerOptions(JWTOptions):
    header_name = forms.CharField(initial="Authorization", required=False)
    scheme = forms.CharField(
        initial="Bearer", required=False, help_text="Empty sends the bare token."
    )

    def clean_header_name(self) -> str:
        """An HTTP token that is not a hop-by-hop, routing or cookie header: no CR/LF
        injection, no ``Host`` (security.md #40)."""
        name = self.cleaned_data.get("header_name") or ""
        problem = header_name_problem(name) if name else ""
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean_scheme(self) -> str:
        """An RFC 9110 auth-scheme token (or empty): no spaces, no CR/LF injection."""
        scheme = self.cleaned_data.get("scheme") or ""
        problem = scheme_problem(scheme)
        if problem:
            raise forms.ValidationError(problem)
        return scheme


class BearerProvider(JWTProvider):
    type = "jwt_bearer"
    label = "JWT bearer (signed JWT on every call)"
    Options: ClassVar[OptionsForm] = BearerOptions
    delivery = "sent on every call in header_name with scheme (default Authorization: Bearer)"

    @sensitive_variables()
    def obtain(self, http: requests.Session, request: requests.PreparedRequest | None) -> Token:
        token, claims = self.mint(request)
        return Token(
            token,
            expires_at=claims["exp"],
            kid=self.signer.headers.get("kid", ""),
            jti=str(claims.get("jti", "")),
        )

    def authorize(self, request: requests.PreparedRequest, token: Token) -> None:
        header = self.options.get("header_name") or "Authorization"
        scheme = self.options.get("scheme")
        scheme = "Bearer" if scheme is None else scheme
        request.headers[header] = f"{scheme} {token.value}" if scheme else token.value

    @property
    def credential_headers(self) -> tuple[str, ...]:
        return (self.options.get("header_name") or "Authorization",)
