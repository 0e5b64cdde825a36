from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("integrations/", include("integrations.urls")),
    path("example/<slug:slug>/", views.example, name="example"),
]
