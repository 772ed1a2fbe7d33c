"""A user added in the admin with a role signs in (issue 22, item 4): its tenants and roles are chosen on the add
page, it may sign in by default (as over the API), and a refused sign-in with the right password says what the
account lacks instead of blaming the password."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from channels_app.models import Membership, Tenant
from tests.conftest import member

User = get_user_model()
WRONG_PASSWORD = "Please enter the correct username and password"


def _sign_in(username: str, password: str):
    browser = Client()
    return browser, browser.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})


def _add_page_form(**fields) -> dict:
    return {"username": "new-agent", "password1": "new-agent-pass-123", "password2": "new-agent-pass-123",
            "is_staff": "on", **fields}


@pytest.mark.django_db
def test_an_agent_added_in_the_admin_with_a_role_signs_in_and_sees_what_it_may_use(admin_client, tenant):
    agents = Group.objects.get(name="WhatsApp agent")

    # the add page offers tenants and roles, and signing in is ticked already
    page = admin_client.get("/admin/auth/user/add/").content.decode()
    assert 'name="tenants"' in page and 'name="groups"' in page
    assert 'name="is_staff" checked' in page or ('name="is_staff"' in page and "checked" in
                                                  page.split('name="is_staff"')[1].split(">")[0])

    # when an administrator adds an agent of tenant 1
    response = admin_client.post("/admin/auth/user/add/", _add_page_form(groups=[agents.pk], tenants=[tenant.pk]))

    # then it exists with its role and tenant
    assert response.status_code == 302, response.content[:3000]
    agent = User.objects.get(username="new-agent")
    assert agent.is_staff and list(agent.groups.all()) == [agents]
    assert list(Membership.objects.filter(user=agent).values_list("tenant_id", flat=True)) == [tenant.pk]
    # and signs in, to a home page that lists what an agent may open
    browser, signed_in = _sign_in("new-agent", "new-agent-pass-123")
    assert signed_in.status_code == 302 and signed_in.url == "/admin/"
    home = browser.get("/admin/").content.decode()
    assert "Interactions" in home and "Contacts" in home
    assert "Channels" in home and "Campaigns" not in home and "Users" not in home


@pytest.mark.django_db
def test_the_add_page_needs_a_tenant(admin_client, tenant):
    response = admin_client.post("/admin/auth/user/add/", _add_page_form())

    assert response.status_code == 200
    assert "tenant" in response.content.decode() and not User.objects.filter(username="new-agent").exists()


@pytest.mark.django_db
def test_a_tenant_administrator_adds_only_its_tenants_and_roles(tenant):
    Tenant.objects.create(id=2, name="Tenant two name")
    administrator = member("admin-one", "Administrator", "WhatsApp agent", tenants=[tenant])
    browser = Client()
    browser.force_login(administrator)

    page = browser.get("/admin/auth/user/add/").content.decode()
    assert "Tenant two name" not in page and "ESP client" not in page
    refused = browser.post("/admin/auth/user/add/", _add_page_form(tenants=[2]))
    assert refused.status_code == 200 and not User.objects.filter(username="new-agent").exists()

    agents = Group.objects.get(name="WhatsApp agent")
    added = browser.post("/admin/auth/user/add/", _add_page_form(groups=[agents.pk], tenants=[tenant.pk]))
    assert added.status_code == 302, added.content[:3000]
    assert User.objects.get(username="new-agent").memberships.get().tenant_id == tenant.pk


# --- what the login page says ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_right_password_without_staff_status_is_told_so(tenant):
    member("agent", "WhatsApp agent", tenants=[tenant], password="agent-pass-123", is_staff=False)

    _, response = _sign_in("agent", "agent-pass-123")

    page = response.content.decode()
    assert response.status_code == 200
    assert WRONG_PASSWORD not in page
    assert "may not sign in" in page and "Staff status" in page


@pytest.mark.django_db
def test_a_right_password_without_a_tenant_is_told_so(db):
    member("loner", "WhatsApp agent", password="loner-pass-123")

    _, response = _sign_in("loner", "loner-pass-123")

    page = response.content.decode()
    assert WRONG_PASSWORD not in page and "no tenant" in page


@pytest.mark.django_db
def test_a_right_password_without_a_role_is_told_so(tenant):
    member("idle", tenants=[tenant], password="idle-pass-123")

    _, response = _sign_in("idle", "idle-pass-123")

    page = response.content.decode()
    assert WRONG_PASSWORD not in page and "no role" in page


@pytest.mark.django_db
def test_a_wrong_password_still_tells_nothing(tenant):
    member("agent", "WhatsApp agent", tenants=[tenant], password="agent-pass-123", is_staff=False)

    for username in ("agent", "nobody"):
        _, response = _sign_in(username, "wrong-pass-123")
        page = response.content.decode()
        assert WRONG_PASSWORD in page and "Staff status" not in page


@pytest.mark.django_db
def test_a_superuser_in_no_tenant_signs_in(db):
    User.objects.create_superuser("root", password="root-pass-123")

    _, response = _sign_in("root", "root-pass-123")

    assert response.status_code == 302
