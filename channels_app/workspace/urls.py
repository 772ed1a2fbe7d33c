from django.urls import path

from channels_app.workspace import views

urlpatterns = [
    path("", views.workspace, name="workspace"),
]
