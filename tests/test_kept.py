"""Rows kept in a process (channels_app/kept.py): what a caller gets is its own copy."""

from channels_app.kept import KeptRows
from channels_app.models import Channel, Tenant


def test_a_kept_row_is_copied_for_each_caller():
    # given: a channel kept with its tenant (a related object held in its state)
    kept_channel = Channel(channel_id="kept", name="Kept", tenant=Tenant(id=7, name="Seven"))
    rows = KeptRows(lambda key: kept_channel, seconds=lambda: 60)

    # when: a caller changes what it got
    first = rows.get("kept")
    first.name = "Changed by a request"
    first.tenant = Tenant(id=8, name="Eight")

    # then: the next caller gets the row as kept, its values and its related objects
    second = rows.get("kept")
    assert second is not kept_channel and second is not first
    assert (second.name, second.tenant.pk, second.tenant.name) == ("Kept", 7, "Seven")
    assert (kept_channel.name, kept_channel.tenant.pk) == ("Kept", 7)
    assert second._state is not kept_channel._state and second._state.adding == kept_channel._state.adding


def test_a_kept_value_that_is_not_a_row_is_copied_too():
    kept = {"a": 1}
    rows = KeptRows(lambda key: kept, seconds=lambda: 60)

    got = rows.get("x")
    got["b"] = 2

    assert rows.get("x") == {"a": 1}
