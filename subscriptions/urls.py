from django.urls import path

from . import views

app_name = "subscriptions"

urlpatterns = [
    path("unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("manage/<str:token>", views.manage, name="manage"),
]
