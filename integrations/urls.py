"""The app's URLs: ``path("integrations/", include("integrations.urls"))`` in a site."""

from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("health", views.health, name="health"),
]
