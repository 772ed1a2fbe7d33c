"""Who may fetch a media file (API.md "Safe by default": media files are never served from a guessable
public path). `/media/<path>` serves a file of MEDIA_ROOT only to a logged-in user (admin session, or an API
token) allowed to see attachments; `may_see_media` (the rights table) and `media_visible` (the tenants) are
the two checks. `/files/<token>/<name>` serves a file to whoever holds a signed link
(channels_app/signed_links.py): the signature is the credential."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseForbidden
from django.views.static import serve
from rest_framework.exceptions import AuthenticationFailed

from channels_app import rights
from channels_app.authentication import ExpiringTokenAuthentication
from channels_app.models import Attachment, MessageAttachment
from channels_app.selectors import restrict
from channels_app.signed_links import LinkRefused, linked_file


def may_see_media(*, user) -> bool:
    """Whether `user` may fetch media files at all (the rights table's rule)."""
    return rights.rule("media-file.get").allows(user)


def media_visible(*, user, path: str) -> bool:
    """Whether the file at `path` (relative to MEDIA_ROOT) is an attachment of one of `user`'s tenants:
    another tenant's file does not exist for the user."""
    if restrict(Attachment.objects.filter(file=path), user).exists():
        return True
    return restrict(MessageAttachment.objects.filter(file=path), user).exists()


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


def signed_media_file(request, token: str, name: str):
    """A file named by a signed link, without credentials; 403 when the link was changed or has expired."""
    try:
        linked = linked_file(token=token, file_name=name)
    except LinkRefused as refusal:
        return HttpResponseForbidden(str(refusal), content_type="text/plain")
    try:
        stored = default_storage.open(linked.storage_name, "rb")
    except (FileNotFoundError, SuspiciousFileOperation, OSError) as error:
        raise Http404("No such file.") from error
    response = FileResponse(stored, content_type=linked.content_type, filename=linked.file_name)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response
