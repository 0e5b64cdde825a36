"""The app's URLs: ``path("integrations/", include("integrations.urls"))`` in a site."""

from django.urls import path

from . import jwks, views

app_name = "integrations"

urlpatterns = [
    path("health", views.health, name="health"),
    # Public keys for providers that fetch a client's jwks_uri (docs/key-custody.md).
    path("<slug:slug>/jwks.json", jwks.jwks, name="jwks"),
]
