"""/anymail/: the tracking webhook of the ESP in use (settings.PAPERBOY_ESP), nothing else.

Built when imported; `webhooks.webhook_urls_reload()` builds it again after the ESP changes.
"""

from django.conf import settings

from .webhooks import webhook_urlpatterns

app_name = "anymail"  # Anymail's own namespace, so its URL names reverse as documented
urlpatterns = webhook_urlpatterns(settings.PAPERBOY_ESP)
