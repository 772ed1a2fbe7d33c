from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from channels_app.esp.views import EspView
from channels_app.health import healthz
from channels_app.messaging.views import NexusMessagesView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("esp", EspView.as_view(), name="esp"),
    path("nexus/v3/channels/<str:channel_id>/messages", NexusMessagesView.as_view(), name="nexus-messages"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("channels_app.api.urls")),
    # Attachments are fetched by hubs and phones; a proxy in front may serve MEDIA_ROOT instead.
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]

handler400 = "channels_app.api.exceptions.bad_request"
handler404 = "channels_app.api.exceptions.page_not_found"
handler500 = "channels_app.api.exceptions.server_error"
