from django.urls import path

from . import views

app_name = "subscriptions"

# Each area keeps its routes together; see the view modules named alongside.
urlpatterns = [
    # signup and confirmation (views_signup.py)
    # manage page, preview, export, delete (views_manage.py)
    path("manage/<str:token>", views.manage, name="manage"),
    # unsubscribe (views.py)
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
]
