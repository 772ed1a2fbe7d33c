"""A campaign's recipient rows as a whole: where the next audience's rows are numbered from."""

from django.db.models import Max, Sum

from channels_app.models import CampaignCounter, CampaignRecipient


def recipient_next_row(*, campaign_id: int) -> int:
    """The row number after the campaign's last (1 for a campaign without recipients). A campaign's first
    audience, the common case, is answered by its counters (kept by the database: nothing was ever inserted
    when their total is 0), never by the recipients, which no index of every row of a campaign serves: their
    maximum is a scan of the whole table, seconds once it holds millions of other campaigns' rows."""
    if not CampaignCounter.objects.filter(campaign_id=campaign_id).aggregate(total=Sum("total"))["total"]:
        return 1
    last = CampaignRecipient.objects.filter(campaign_id=campaign_id).aggregate(last=Max("row_number"))["last"]
    return (last or 0) + 1
