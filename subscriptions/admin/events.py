"""The ESP's tracking events, read-only in the admin."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..models import EmailEvent


@admin.register(EmailEvent)
class EmailEventAdmin(admin.ModelAdmin[EmailEvent]):
    """What ESPs reported, read-only: the record of why an address was suppressed."""

    list_display = ("received_at", "event_type", "recipient", "subscriber", "esp_name", "outcome")
    list_filter = ("event_type", "esp_name", "received_at")
    search_fields = ("recipient", "message_id", "event_id")
    list_select_related = ("subscriber",)
    date_hierarchy = "received_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EmailEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: EmailEvent | None = None) -> bool:
        return False
