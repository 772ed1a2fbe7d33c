"""Deployment: what production needs beyond the features."""

import pytest
from django.test import override_settings


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000, UPLOAD_MAX_SIZE=2000)
def test_a_body_over_the_limit_is_413_before_the_view_reads_it(staff_api):
    json_body = staff_api.generic("POST", "/api/tenants/", b" " * 1001, content_type="application/json")
    upload = staff_api.generic("POST", "/api/attachments/", b"-" * 2001, content_type="multipart/form-data; boundary=x")
    small_upload = staff_api.generic("POST", "/api/attachments/", b"-" * 1500,
                                     content_type="multipart/form-data; boundary=x")

    assert (json_body.status_code, upload.status_code) == (413, 413)
    assert "1001 bytes" in json_body.json()["detail"]
    assert small_upload.status_code == 400  # under the upload limit: read, and refused as a broken form
