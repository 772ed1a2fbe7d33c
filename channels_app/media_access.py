"""Who may fetch a media file (API.md "Safe by default": media files are never served from a guessable
public path). `/media/<path>` serves a file of MEDIA_ROOT only to a logged-in user (admin session, or an API
token) allowed to see attachments; signed links for hubs and phones come with the media work.
`may_see_media` (the rights table) and `media_visible` (the tenants) are the two checks."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpResponseForbidden
from django.views.static import serve
from rest_framework.exceptions import AuthenticationFailed

from channels_app import rights
from channels_app.authentication import ExpiringTokenAuthentication
from channels_app.models import Attachment
from channels_app.selectors import restrict


def may_see_media(*, user) -> bool:
    """Whether `user` may fetch media files at all (the rights table's rule)."""
    return rights.rule("media-file.get").allows(user)


def media_visible(*, user, path: str) -> bool:
    """Whether the file at `path` (relative to MEDIA_ROOT) is an attachment of one of `user`'s tenants:
    another tenant's file does not exist for the user."""
    return restrict(Attachment.objects.filter(file=path), user).exists()


def _caller(request):
    if request.user.is_authenticated:
        return request.user
    try:
        # It reads the Authorization header only.
        authenticated = ExpiringTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return authenticated[0] if authenticated else None


def media_file(request, path: str):
    user = _caller(request)
    if user is None:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    if not may_see_media(user=user):
        return HttpResponseForbidden("You may not see media files.", content_type="text/plain")
    if not media_visible(user=user, path=path):
        raise Http404("No such file.")
    try:
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
    except SuspiciousFileOperation as error:  # a path out of MEDIA_ROOT (../): there is no such file
        raise Http404("No such file.") from error
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
