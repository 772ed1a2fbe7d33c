from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from channels_app.esp.views import EspView, esp_post
from channels_app.health import healthz, metrics_view
from channels_app.lean import lean_post
from channels_app.media_access import media_file, signed_media_file
from channels_app.messaging.views import NexusMessagesView, nexus_messages_post
from channels_app.whatsapp.views import WhatsAppWebhookView

# The hot doors come first, so that resolving them tries few patterns (issue 25): /esp, /nexus, then the API,
# whose own list starts with an agent's message (channels_app/api/urls.py). Resolution takes the first pattern
# that matches, so this order answers every URL as the order of the sections did only because no pattern moved
# ahead of another can match a URL that the other matches: their fixed beginnings differ ("esp", "nexus/",
# "api/" against "", "healthz", "metrics", "admin/", "workspace/", "sign-in/"). A new pattern goes after them
# unless the same holds for it (tests/test_url_order.py).
urlpatterns = [
    # POSTs to these two doors skip the middleware and DRF they do not use (channels_app/lean.py).
    path("esp", lean_post(EspView.as_view(), esp_post), name="esp"),
    path("nexus/v3/channels/<str:channel_id>/messages", lean_post(NexusMessagesView.as_view(), nexus_messages_post),
         name="nexus-messages"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("channels_app.api.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # The agents' page (channels_app/workspace), built on the API above.
    path("workspace/", include("channels_app.workspace.urls")),
    # Single sign-on and the second factor of a sign-in (channels_app/sign_in), for every login page.
    path("sign-in/", include("channels_app.sign_in.urls")),
    path("whatsapp/<str:channel_id>/webhook", WhatsAppWebhookView.as_view(), name="whatsapp-webhook"),
    # Media files only to a logged-in user allowed to see them (channels_app/media_access.py), never publicly:
    # a proxy in front must not serve MEDIA_ROOT either.
    re_path(r"^media/(?P<path>.*)$", media_file, name="media-file"),
    # Signed, expiring links (channels_app/signed_links.py): the signature is the credential.
    re_path(r"^files/(?P<token>[^/]+)/(?P<name>[^/]+)$", signed_media_file, name="media-link"),
]

handler400 = "channels_app.api.exceptions.bad_request"
handler404 = "channels_app.api.exceptions.page_not_found"
handler500 = "channels_app.api.exceptions.server_error"
