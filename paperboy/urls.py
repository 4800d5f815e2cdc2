from django.contrib import admin
from django.urls import include, path

from digest import views as digest_views
from digest import views_feedback, views_feeds, views_papers
from paperboy import health

urlpatterns = [
    # For load balancers and uptime monitors: database and Redis reachable (paperboy/health.py).
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Only the configured ESP's tracking webhook, guarded (subscriptions/webhooks.py).
    path("anymail/", include("subscriptions.webhook_urls")),
    path("digest/<str:token>", digest_views.digest_in_browser, name="digest_view"),
    # <path:>, not <str:>: the token carries an arXiv id, and an old-style one has a "/".
    path("feedback/<path:token>", views_feedback.feedback, name="feedback"),
    path("papers/", views_papers.papers_index, name="papers"),
    path("papers/<str:day>/", views_papers.papers_day, name="papers_day"),
    path("feed/<str:key>.atom", views_feeds.feed_atom, name="feed_atom"),
    path("feed/<str:key>.json", views_feeds.feed_json, name="feed_json"),
    path("", include("pages.urls")),
]
