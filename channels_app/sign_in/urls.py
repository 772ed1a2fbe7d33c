from django.urls import path

from channels_app.sign_in import views

urlpatterns = [
    path("oidc/", views.oidc_start, name="sign-in-oidc"),
    path("oidc/callback/", views.oidc_callback, name="sign-in-oidc-callback"),
    path("code/", views.second_factor_view, name="sign-in-code"),
    path("enrol/", views.enrol_view, name="sign-in-enrol"),
]
