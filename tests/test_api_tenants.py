import pytest

from channels_app.models import Tenant


@pytest.mark.django_db
def test_create_list_and_rename_tenant(staff_api, staff_user):
    created = staff_api.post("/api/tenants/", {"name": "Resources"}, format="json")
    assert created.status_code == 201, created.content
    new_id = created.json()["id"]  # assigned: only a superuser chooses ids (tests/test_shared_users.py)

    # the creator (a member of tenant 1) becomes a member of the new tenant
    assert [t["id"] for t in staff_api.get("/api/tenants/").json()["results"]] == [1, new_id]
    assert staff_user.memberships.filter(tenant_id=new_id).exists()
    response = staff_api.patch(f"/api/tenants/{new_id}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert Tenant.objects.get(id=new_id).name == "Renamed"


@pytest.fixture
def root_api(django_user_model):
    from tests.conftest import _client_for

    return _client_for(django_user_model.objects.create_superuser("root", password="root-pass-123"))


@pytest.mark.django_db
def test_a_superuser_chooses_the_id(root_api):
    assert root_api.post("/api/tenants/", {"id": 101, "name": "Resources"}, format="json").status_code == 201
    assert Tenant.objects.get(id=101).name == "Resources"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [({"id": 0, "name": "Zero"}, "id"), ({"id": "x", "name": "Text"}, "id"), ({"id": 5}, "name"), ({}, "name")],
)
def test_invalid_tenant_is_400_naming_the_field(root_api, payload, field):
    response = root_api.post("/api/tenants/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_duplicate_tenant_is_400(root_api, tenant):
    response = root_api.post("/api/tenants/", {"id": tenant.id, "name": "Other"}, format="json")

    assert response.status_code == 400
    assert "id" in response.json()


@pytest.mark.django_db
def test_tenant_with_channels_cannot_be_deleted(staff_api, channel):
    response = staff_api.delete("/api/tenants/1/")

    assert response.status_code == 400
    assert "channel-whatsapp-REAL" in response.json()["id"][0]
    assert Tenant.objects.filter(id=1).exists()
