"""Who may fetch a media file (API.md "Safe by default": media files are never served from a guessable
public path). `/media/<path>` serves a file of MEDIA_ROOT only to a logged-in user (admin session, or an API
token) allowed to see attachments; signed links for hubs and phones come with the media work.
`may_see_media` is the one check, so that tenant scoping is added in one place."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpResponseForbidden
from django.views.static import serve
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

MEDIA_PERMISSION = "channels_app.view_attachment"


def may_see_media(*, user, path: str) -> bool:
    """Whether `user` may fetch the media file at `path` (relative to MEDIA_ROOT)."""
    return bool(user and user.is_authenticated and user.has_perm(MEDIA_PERMISSION))


def _caller(request):
    if request.user.is_authenticated:
        return request.user
    try:
        authenticated = TokenAuthentication().authenticate(request)  # it reads the Authorization header only
    except AuthenticationFailed:
        return None
    return authenticated[0] if authenticated else None


def media_file(request, path: str):
    user = _caller(request)
    if user is None:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    if not may_see_media(user=user, path=path):
        return HttpResponseForbidden("You may not see media files.", content_type="text/plain")
    try:
        response = serve(request, path, document_root=settings.MEDIA_ROOT)
    except SuspiciousFileOperation as error:  # a path out of MEDIA_ROOT (../): there is no such file
        raise Http404("No such file.") from error
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
