from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The only late imports of the package's own modules (docs/architecture.md):
        # these need the models loaded.
        from . import checks, receivers  # noqa: F401  (registers checks and receivers)
        from .redaction import install_log_filter

        install_log_filter()
