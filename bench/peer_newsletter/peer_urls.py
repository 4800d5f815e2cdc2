"""The peer's URLs: django-newsletter's own, which its messages link to."""

from django.urls import include, path

urlpatterns = [path("newsletter/", include("newsletter.urls"))]
