"""A user shared by two tenants belongs to both: only someone who administers every tenant the user belongs to
(or a superuser) may change it, on the API and in the admin (issue 22, item 12). An administrator of one tenant
could otherwise change the shared user's password, log in as it and read the other tenant."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from channels_app.models import Membership, Tenant
from tests.conftest import _client_for, member

User = get_user_model()


@pytest.fixture
def two_tenants(tenant):
    return tenant, Tenant.objects.create(id=2, name="Tenant two name")


@pytest.fixture
def admin_of_one(two_tenants):
    """An administrator of tenant 1 only."""
    return member("admin-one", "Administrator", "WhatsApp agent", tenants=[two_tenants[0]],
                  password="admin-one-pass-123")


@pytest.fixture
def shared(two_tenants):
    """An agent of both tenants."""
    return member("shared", "WhatsApp agent", tenants=list(two_tenants), password="shared-pass-123")


@pytest.fixture
def local(two_tenants):
    """An agent of tenant 1 only."""
    return member("local", "WhatsApp agent", tenants=[two_tenants[0]], password="local-pass-123")


def _unchanged(user) -> bool:
    stored = User.objects.filter(pk=user.pk).first()
    return stored is not None and stored.is_active and stored.check_password(f"{user.username}-pass-123") and \
        stored.email == ""


# --- the API ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"password": "taken-over-pass-456"}, {"is_active": False},
                                    {"email": "attacker@example.com"}, {"tenants": [1]}])
def test_an_administrator_of_one_tenant_cannot_change_a_user_shared_with_another(admin_of_one, shared, change):
    response = _client_for(admin_of_one).patch(f"/api/users/{shared.pk}/", change, format="json")

    assert response.status_code == 403, response.content
    assert "tenant" in response.json()["detail"] and "Tenant two" not in response.content.decode()
    assert _unchanged(shared)
    assert set(Membership.objects.filter(user=shared).values_list("tenant_id", flat=True)) == {1, 2}


@pytest.mark.django_db
def test_nor_delete_it(admin_of_one, shared):
    response = _client_for(admin_of_one).delete(f"/api/users/{shared.pk}/")

    assert response.status_code == 403, response.content
    assert User.objects.filter(pk=shared.pk).exists()


@pytest.mark.django_db
def test_an_administrator_of_every_tenant_of_the_user_may(two_tenants, admin_of_one, shared, local):
    admin_of_both = member("admin-both", "Administrator", "WhatsApp agent", tenants=list(two_tenants))
    api = _client_for(admin_of_both)

    assert api.patch(f"/api/users/{shared.pk}/", {"password": "new-shared-pass-456"}, format="json").status_code == 200
    assert User.objects.get(pk=shared.pk).check_password("new-shared-pass-456")
    # and an administrator of tenant 1 still changes a user of tenant 1 alone
    response = _client_for(admin_of_one).patch(f"/api/users/{local.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 200, response.content
    assert _client_for(admin_of_one).delete(f"/api/users/{local.pk}/").status_code == 204


@pytest.mark.django_db
def test_the_list_shows_no_membership_of_tenants_the_caller_cannot_see(admin_of_one, shared):
    api = _client_for(admin_of_one)

    by_other_tenant = api.get("/api/users/", {"tenant": 2}).json()
    listed = {user["username"]: user for user in api.get("/api/users/").json()["results"]}

    assert by_other_tenant["count"] == 0  # as for a tenant that does not exist
    assert [user["username"] for user in api.get("/api/users/", {"tenant": 1}).json()["results"]] == [
        "admin-one", "shared"]
    assert listed["shared"]["tenants"] == [1]
    assert api.get(f"/api/users/{shared.pk}/").json()["tenants"] == [1]


# --- the admin -------------------------------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(admin_of_one) -> Client:
    browser = Client()
    browser.force_login(admin_of_one)
    return browser


@pytest.mark.django_db
def test_the_admin_shows_a_shared_user_read_only(admin_browser, shared):
    page = admin_browser.get(f"/admin/auth/user/{shared.pk}/change/")

    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="_save"' not in content  # viewed, not changed
    assert "Read only" in content and "password/" not in content  # says why; no button to a refusal
    assert "Tenant two name" not in content  # nor the membership of the tenant the caller does not see


@pytest.mark.django_db
def test_the_admin_refuses_to_change_a_shared_user(admin_browser, shared):
    # the change form
    response = admin_browser.post(f"/admin/auth/user/{shared.pk}/change/", {
        "username": "shared", "email": "attacker@example.com", "is_active": "",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })
    assert response.status_code == 403
    # the password form
    assert admin_browser.get(f"/admin/auth/user/{shared.pk}/password/").status_code == 403
    response = admin_browser.post(f"/admin/auth/user/{shared.pk}/password/", {
        "password1": "taken-over-pass-456", "password2": "taken-over-pass-456", "usable_password": "true"})
    assert response.status_code == 403
    # the delete page
    assert admin_browser.post(f"/admin/auth/user/{shared.pk}/delete/", {"post": "yes"}).status_code == 403
    # the delete action of the list
    admin_browser.post("/admin/auth/user/", {"action": "delete_selected", "_selected_action": [shared.pk],
                                             "post": "yes"})
    assert _unchanged(shared)


@pytest.mark.django_db
def test_the_admin_still_changes_a_user_of_the_callers_tenants(admin_browser, local):
    response = admin_browser.post(f"/admin/auth/user/{local.pk}/password/", {
        "password1": "changed-local-pass-456", "password2": "changed-local-pass-456", "usable_password": "true"})

    assert response.status_code == 302, response.content[:2000]
    assert User.objects.get(pk=local.pk).check_password("changed-local-pass-456")


@pytest.mark.django_db
def test_a_tenant_page_adds_only_users_the_caller_sees(admin_browser, two_tenants):
    stranger = member("stranger", "WhatsApp agent", tenants=[two_tenants[1]])

    response = admin_browser.post("/admin/channels_app/tenant/1/change/", {
        "name": "Environment",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": str(stranger.pk), "memberships-0-tenant": "1",
    })

    assert response.status_code == 200  # the form again, with the error
    assert not Membership.objects.filter(user=stranger, tenant_id=1).exists()


# --- creating a tenant -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_tenant_does_not_tell_whether_an_id_exists(admin_of_one):
    api = _client_for(admin_of_one)

    taken = api.post("/api/tenants/", {"id": 2, "name": "Probe"}, format="json")  # tenant 2 exists, unseen
    free = api.post("/api/tenants/", {"id": 3, "name": "Probe"}, format="json")

    assert taken.status_code == free.status_code == 400
    assert taken.json() == free.json() and list(taken.json()) == ["id"]
    assert not Tenant.objects.filter(id=3).exists()


@pytest.mark.django_db
def test_a_tenant_administrator_gets_an_id_assigned(admin_of_one):
    response = _client_for(admin_of_one).post("/api/tenants/", {"name": "Assigned"}, format="json")

    assert response.status_code == 201, response.content
    created = Tenant.objects.get(name="Assigned")
    assert response.json()["id"] == created.id and created.id not in (1, 2, 3)
    assert Membership.objects.filter(user=admin_of_one, tenant=created).exists()


@pytest.mark.django_db
def test_the_admins_tenant_page_assigns_the_id_too(admin_browser, admin_of_one):
    assert 'name="id"' not in admin_browser.get("/admin/channels_app/tenant/add/").content.decode()

    response = admin_browser.post("/admin/channels_app/tenant/add/", {
        "name": "Added in the admin", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})

    assert response.status_code == 302, response.content[:3000]
    created = Tenant.objects.get(name="Added in the admin")
    assert created.id >= 100_000 and Membership.objects.filter(user=admin_of_one, tenant=created).exists()


@pytest.mark.django_db
def test_the_admin_keeps_the_groups_the_caller_could_not_have_granted(admin_browser, local):
    # given a user of tenant 1 who is also an ESP client, a group its administrator is not in
    from django.contrib.auth.models import Group

    local.groups.add(Group.objects.get(name="ESP client"))
    agents = Group.objects.get(name="WhatsApp agent")

    # when the administrator saves the user's page, with the only group it may grant
    response = admin_browser.post(f"/admin/auth/user/{local.pk}/change/", {
        "username": "local", "email": "local@example.com", "is_active": "on", "is_staff": "on",
        "groups": [agents.pk], "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })

    # then the user keeps the group the page did not offer (as over the API)
    assert response.status_code == 302, response.content[:3000]
    assert sorted(local.groups.values_list("name", flat=True)) == ["ESP client", "WhatsApp agent"]
    assert User.objects.get(pk=local.pk).email == "local@example.com"


# --- a user who may do more than the caller (review of issue 22) --------------------------------------------------


@pytest.fixture
def esp_client(two_tenants):
    """An ESP client of tenant 1 (a strategy's account): it may call /esp, which the administrator may not."""
    return member("strategy", "ESP client", tenants=[two_tenants[0]], password="strategy-pass-123")


@pytest.mark.django_db
@pytest.mark.parametrize("active", [True, False])
def test_an_administrator_cannot_take_over_a_user_who_may_do_more(admin_of_one, esp_client, active):
    # given an ESP client of the administrator's own tenant (deactivated or not: it would be activated again)
    User.objects.filter(pk=esp_client.pk).update(is_active=active)

    # when the administrator, who may not call /esp, sets its password (and activates it)
    response = _client_for(admin_of_one).patch(
        f"/api/users/{esp_client.pk}/", {"password": "taken-over-pass-456", "is_active": True}, format="json")

    # then it is refused: its password would give the administrator a right it was not given
    assert response.status_code == 403, response.content
    assert "may do" in response.json()["detail"]
    stored = User.objects.get(pk=esp_client.pk)
    assert stored.check_password("strategy-pass-123") and stored.is_active == active
    assert "password" in str(response.json())  # named: its other fields may still be changed


@pytest.mark.django_db
def test_the_admin_refuses_it_too_and_an_administrator_with_the_role_may(two_tenants, admin_browser, esp_client):
    page = admin_browser.get(f"/admin/auth/user/{esp_client.pk}/change/").content.decode()
    assert "password/" not in page and "not yours to set" in page  # no button to a refusal; says why
    assert admin_browser.get(f"/admin/auth/user/{esp_client.pk}/password/").status_code == 403
    assert admin_browser.post(f"/admin/auth/user/{esp_client.pk}/password/", {
        "password1": "taken-over-pass-456", "password2": "taken-over-pass-456", "usable_password": "true",
    }).status_code == 403
    assert User.objects.get(pk=esp_client.pk).check_password("strategy-pass-123")

    # an administrator who holds the ESP client role may (as it may grant it)
    holder = member("admin-esp", "Administrator", "ESP client", tenants=[two_tenants[0]])
    assert _client_for(holder).patch(f"/api/users/{esp_client.pk}/", {"password": "new-strategy-pass-456"},
                                     format="json").status_code == 200
