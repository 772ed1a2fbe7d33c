"""Media files are never served from a guessable public path (API.md "Safe by default"): `/media/...` only to a
logged-in user (session or token) with `channels_app.view_attachment` (channels_app/media_access.py)."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

GUESSES = ["/media/attachments/2026/11/bill.pdf", "/media/attachments/2026/11/", "/media/attachments/",
           "/media/", "/media/../project/settings.py", "/media/%2e%2e/project/settings.py",
           "/media//etc/passwd", "/media/attachments/2026/11/bill.pdf%00.png", "/media/attachments/2026/11/BILL.PDF"]


@pytest.fixture
def media_file(settings, tenant):
    from channels_app.models import Attachment

    folder = settings.MEDIA_ROOT / "attachments" / "2026" / "11"
    folder.mkdir(parents=True)
    (folder / "bill.pdf").write_bytes(b"%PDF-1.4 the customer's bill")
    Attachment.objects.create(tenant=tenant, file="attachments/2026/11/bill.pdf", name="bill.pdf", kind="document",
                              mime_type="application/pdf", size=28)
    return "/media/attachments/2026/11/bill.pdf"


def viewer(django_user_model, tenant):
    from channels_app.models import Membership

    user = django_user_model.objects.create_user("viewer", password="viewer-pass-123")
    user.user_permissions.add(Permission.objects.get(codename="view_attachment"))
    Membership.objects.create(user=user, tenant=tenant)
    return user


@pytest.mark.django_db
def test_no_guess_reaches_a_media_file_without_logging_in(client, media_file):
    answers = {path: client.get(path) for path in GUESSES}

    assert {path: r.status_code for path, r in answers.items() if r.status_code not in (302, 400, 404)} == {}
    assert all(b"bill" not in b"".join(r) for r in answers.values() if r.streaming) and all(
        b"bill" not in r.content for r in answers.values() if not r.streaming)
    assert answers[media_file]["Location"].startswith("/admin/login/?next=")


@pytest.mark.django_db
def test_a_user_without_the_permission_is_refused(client, django_user_model, media_file):
    user = django_user_model.objects.create_user("agent", password="agent-pass-123")
    client.force_login(user)

    assert client.get(media_file).status_code == 403


@pytest.mark.django_db
def test_a_user_allowed_to_see_attachments_gets_the_file(client, django_user_model, media_file, tenant):
    client.force_login(viewer(django_user_model, tenant))

    response = client.get(media_file)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 the customer's bill"
    assert response["Cache-Control"] == "private, no-store"
    assert client.get("/media/../project/settings.py").status_code == 404


@pytest.mark.django_db
def test_an_api_token_of_an_allowed_user_works_and_a_wrong_one_does_not(client, django_user_model, media_file,
                                                                         tenant):
    user = viewer(django_user_model, tenant)
    token = Token.objects.create(user=user)

    allowed = client.get(media_file, headers={"Authorization": f"Token {token.key}"})
    wrong = client.get(media_file, headers={"Authorization": "Token not-a-token"})

    assert allowed.status_code == 200
    assert wrong.status_code == 302


@pytest.mark.django_db
def test_a_file_of_another_tenant_does_not_exist_for_the_user(client, django_user_model, media_file, tenant):
    from channels_app.models import Membership, Tenant

    user = viewer(django_user_model, tenant)
    Membership.objects.filter(user=user).update(tenant=Tenant.objects.create(id=2, name="Other"))
    client.force_login(user)

    assert client.get(media_file).status_code == 404
