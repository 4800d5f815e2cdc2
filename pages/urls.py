from django.urls import path

from . import views, views_manage, views_signup

app_name = "subscriptions"

# Each area keeps its routes together; see the view modules named alongside.
urlpatterns = [
    # signup and confirmation (views_signup.py)
    path("", views_signup.home, name="home"),
    path("signup/check-inbox", views_signup.signup_check_inbox, name="signup_check_inbox"),
    path("signup/resend", views_signup.signup_resend, name="signup_resend"),
    path("confirm/<str:token>", views_signup.confirm, name="confirm"),
    path("confirm/<str:token>/resend", views_signup.confirm_resend, name="confirm_resend"),
    # manage page, preview, export, delete, feedback undo, new links (views_manage.py)
    path("manage/<str:token>", views_manage.manage, name="manage"),
    path("manage/<str:token>/preview", views_manage.manage_preview, name="manage_preview"),
    path("manage/<str:token>/pause", views_manage.manage_pause, name="manage_pause"),
    path("manage/<str:token>/resume", views_manage.manage_resume, name="manage_resume"),
    path("manage/<str:token>/export", views_manage.manage_export, name="manage_export"),
    path("manage/<str:token>/feed/new", views_manage.manage_feed_new, name="manage_feed_new"),
    path("manage/<str:token>/delete", views_manage.manage_delete, name="manage_delete"),
    path(
        "manage/<str:token>/feedback/undo",
        views_manage.manage_feedback_undo,
        name="manage_feedback_undo",
    ),
    # links by email: a fresh settings link, and the emailed export / delete link
    path("manage-link", views_manage.manage_link_form, name="manage_link_form"),
    path("manage-link/sent", views_manage.manage_link_sent, name="manage_link_sent"),
    path("your-data/<str:token>", views_manage.manage_action, name="manage_action"),
    # unsubscribe (views.py)
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
]
