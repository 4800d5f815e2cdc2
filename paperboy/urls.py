from django.contrib import admin
from django.urls import include, path

from digest import views as digest_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("anymail/", include("anymail.urls")),
    path("digest/<str:token>", digest_views.digest_in_browser, name="digest_view"),
    path("", include("subscriptions.urls")),
]
