from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Digests"

    def ready(self) -> None:
        from .lookups import register

        register()
