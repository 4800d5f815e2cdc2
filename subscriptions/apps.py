from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self) -> None:
        from anymail.signals import tracking

        from .tracking import tracking_event_receive

        # dispatch_uid: connected once even if ready() runs twice (as in some test runners).
        tracking.connect(tracking_event_receive, dispatch_uid="subscriptions.tracking")
