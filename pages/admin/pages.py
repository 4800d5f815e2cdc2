"""The subscriber admin's two extra pages: the CSV import and a subscriber's digest preview.
Plain functions of the ModelAdmin and the request, which SubscriberAdmin's views call."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from digest.admin_views import PreviewDateForm, default_digest_date, digest_preview_build
from paperboy.text import long_date
from subscriptions.models import Subscriber

from ..csv_import import ImportMode, ImportReport, subscribers_import
from .forms import ImportForm


def import_page(modeladmin: admin.ModelAdmin[Subscriber], request: HttpRequest) -> HttpResponse:
    if not (modeladmin.has_add_permission(request) and modeladmin.has_change_permission(request)):
        raise PermissionDenied
    report: ImportReport | None = None
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    if form.is_valid():
        report = subscribers_import(
            data=form.cleaned_data["file"].read(),
            mode=ImportMode(form.cleaned_data["mode"]),
        )
        form = ImportForm()
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": "Import subscribers from CSV",
        "form": form,
        "report": report,
    }
    return TemplateResponse(request, "admin/subscriptions/subscriber/import.html", context)


def preview_page(
    modeladmin: admin.ModelAdmin[Subscriber], request: HttpRequest, object_id: str
) -> HttpResponse:
    subscriber = get_object_or_404(Subscriber, pk=object_id)
    if not modeladmin.has_view_permission(request, subscriber):
        raise PermissionDenied
    form = PreviewDateForm(request.GET if "date" in request.GET else None)
    preview = None
    if form.is_valid():
        preview = digest_preview_build(subscriber=subscriber, date=form.cleaned_data["date"])
    elif not form.is_bound:
        date = default_digest_date()
        form = PreviewDateForm(initial={"date": date})
        preview = digest_preview_build(subscriber=subscriber, date=date)
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "original": subscriber,
        "title": f"Digest preview for {subscriber.email}",
        "form": form,
        "preview": preview,
        "long_date": long_date(preview.date) if preview else "",
    }
    return TemplateResponse(request, "admin/digest/preview.html", context)
