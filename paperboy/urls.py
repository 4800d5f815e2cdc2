from django.contrib import admin
from django.urls import include, path

from digest import views as digest_views
from digest import views_feedback

urlpatterns = [
    path("admin/", admin.site.urls),
    path("anymail/", include("anymail.urls")),
    path("digest/<str:token>", digest_views.digest_in_browser, name="digest_view"),
    # <path:>, not <str:>: the token carries an arXiv id, and an old-style one has a "/".
    path("feedback/<path:token>", views_feedback.feedback, name="feedback"),
    path("", include("subscriptions.urls")),
]
