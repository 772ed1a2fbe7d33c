import pytest

from channels_app.models import Tenant


@pytest.mark.django_db
def test_create_list_and_rename_tenant(staff_api, staff_user):
    assert staff_api.post("/api/tenants/", {"id": 101, "name": "Resources"}, format="json").status_code == 201

    # the creator (a member of tenant 1) becomes a member of the new tenant
    assert [t["id"] for t in staff_api.get("/api/tenants/").json()["results"]] == [1, 101]
    assert staff_user.memberships.filter(tenant_id=101).exists()
    response = staff_api.patch("/api/tenants/101/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert Tenant.objects.get(id=101).name == "Renamed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [({"name": "No id"}, "id"), ({"id": 0, "name": "Zero"}, "id"), ({"id": "x", "name": "Text"}, "id"),
     ({"id": 5}, "name")],
)
def test_invalid_tenant_is_400_naming_the_field(staff_api, payload, field):
    response = staff_api.post("/api/tenants/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_duplicate_tenant_is_400(staff_api, tenant):
    response = staff_api.post("/api/tenants/", {"id": tenant.id, "name": "Other"}, format="json")

    assert response.status_code == 400
    assert "id" in response.json()


@pytest.mark.django_db
def test_tenant_with_channels_cannot_be_deleted(staff_api, channel):
    response = staff_api.delete("/api/tenants/1/")

    assert response.status_code == 400
    assert "channel-whatsapp-REAL" in response.json()["id"][0]
    assert Tenant.objects.filter(id=1).exists()
