"""Outbound notification campaigns: audience validation, the state machine,
and execution in batches that many workers share, throttled per campaign
across workers. Every recipient goes through InviteToChat's service."""

import codecs
import csv
import io
import itertools
import json
import logging
import re
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from psycopg.errors import UniqueViolation

from channels_app.audit import audit_record
from channels_app.bulk import bulk_insert_rows, bulk_update_rows, copy_rows
from channels_app.csv_exports import SafeCSVWriter
from channels_app.errors import ApplicationError, CampaignStateConflict, InvalidFields, InvalidParameter
from channels_app.models import (
    AuditAction,
    Campaign,
    CampaignCounter,
    CampaignRecipient,
    CampaignState,
    Channel,
    Delivery,
    MessageStatus,
    Segment,
    StandardResponse,
)
from channels_app.phones import normalize_client_phone
from channels_app.publishing import CAMPAIGN_AUDIENCE_LOAD, CAMPAIGN_BATCH, publish
from channels_app.send_windows import RECIPIENT, send_window_parse
from channels_app.services.audience_rows import csv_fast_row
from channels_app.services.campaign_reports import report_recipients_reached
from channels_app.services.deliveries import deliveries_send
from channels_app.services.invitations import Invitee, invitation_plan, invitations_create
from channels_app.services.recipients import recipient_next_row
from channels_app.services.segments import segment_audience_take, segment_contacts
from channels_app.services.send_windows import (
    AudienceEntry,
    due_recipients_filter,
    send_window_changed,
    send_window_hold,
    send_window_openings,
)
from channels_app.services.variants import campaign_variants, variant_for, variants_parse, variants_store
from channels_app.text_rules import escaped, text_rule_broken_at, text_rule_message
from channels_app.validators import validate_queue_key

logger = logging.getLogger(__name__)

BATCH_SIZE = 200  # recipients written in one transaction and sent side by side
PARALLEL_CHAINS = 4  # batch tasks started side by side, so that many workers share a campaign
# While a channel's circuit is open (services.deliveries), a running campaign sends nothing to it, but
# for one recipient a batch once the circuit has been open this long (its success closes the circuit).
CIRCUIT_PROBE_INTERVAL = timedelta(seconds=30)
# Field codes the server fills itself, so an audience row need not carry them.
DERIVED_CONTACT_PROPERTIES = {"Id", "PrimaryPhoneNumber", "FullName"}


# --- audience -----------------------------------------------------------------

# Rows validated and stored at a time (a transaction each in the background): memory stays flat however large the
# audience (a chunk is tens of MB at most), and a chunk's fixed costs (its transaction, its progress) are spread
# over many rows.
AUDIENCE_CHUNK = 50_000
AUDIENCE_STALLED = timedelta(minutes=2)  # an audience read in the background without progress this long is resumed
# Field codes a campaign's recipients can fill, besides those their rows carry: the interaction's own
# (services/interactions.py, interaction_field_values); a campaign has no agent.
INTERACTION_FIELD_CODES = {"Id", "DateCreated", "FromAddress", "ToAddress"}


@dataclass
class AudienceReport:
    accepted: int = 0
    duplicates: list[int] = field(default_factory=list)  # row numbers sent once, with an earlier row
    rejected: list[dict] = field(default_factory=list)  # {"row": n, "client_id": ..., "errors": [...]}
    duplicate_rows: list[dict] = field(default_factory=list)  # the repeated rows, listed like refused ones
    rejected_total: int = 0
    duplicates_total: int = 0
    limit: int | None = None  # rows listed at most (None: all of them)
    state: str = "done"  # or LOADING: a worker reads the file (the campaign's upload_report follows it)
    lines: int = 0  # of the file read in the background: about its rows

    def refuse(self, entry: dict) -> None:
        self.rejected_total += 1
        if self.limit is None or len(self.rejected) < self.limit:
            self.rejected.append(entry)

    def repeat(self, entry: dict) -> None:
        self.duplicates_total += 1
        if self.limit is None or len(self.duplicates) < self.limit:
            self.duplicates.append(entry["row"])
            self.duplicate_rows.append(entry)

    def as_dict(self) -> dict:
        answer = {"state": self.state, "accepted": self.accepted, "duplicates": self.duplicates,
                  "rejected": self.rejected, "duplicate_rows": self.duplicate_rows}
        if self.state == LOADING:
            answer["lines"] = self.lines
        return answer


LOADING = "loading"


@dataclass(frozen=True)
class UnreadableRow:
    """A CSV record the parser could not read (a field over its limit...): a refused row, with the reason."""

    reason: str


@dataclass
class AudienceCsv:
    """An audience CSV checked whole before any row is read (UTF-8, a header with a client_id column), then
    read row by row from the file as it is (an upload Django keeps on disk), never whole in memory."""

    binary: object  # a seekable file object of bytes
    columns: list[str]
    lines: int  # line breaks in the file: about the number of rows
    name: str = ""

    def rows(self):
        """First the header (a CsvHeader), then each row: its values as read (a list of str; `_audience_row`
        makes the general path's dictionary of them), or an UnreadableRow."""
        holds_nul = self._holds_nul()
        self.binary.seek(0)
        text = io.TextIOWrapper(self.binary, encoding="utf-8-sig", newline="")
        try:
            reader = csv.reader(text)
            yield CsvHeader(columns=[name.strip() for name in next(reader, [])], check_text=holds_nul)
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:  # the parser skips to the next line
                    yield UnreadableRow(_unreadable_reason(error))
                    continue
                if not values:
                    continue  # a blank line is no row
                yield values
        finally:
            if not self.binary.closed:
                text.detach()  # the upload stays open for its owner

    def _holds_nul(self) -> bool:
        """Whether the file holds a NUL byte (in UTF-8, a NUL character and nothing else): the only text rule a
        file read as strict UTF-8 can break (it holds no lone surrogate), so without one no row's values need
        the rules' search (one pass over the file in blocks, at memory speed)."""
        self.binary.seek(0)
        while block := self.binary.read(1 << 20):
            if b"\0" in block:
                return True
        return False


@dataclass(frozen=True)
class CsvHeader:
    """An audience CSV's column names (stripped), and whether its rows' values need the text rules' search."""

    columns: list
    check_text: bool = True


def _unreadable_reason(error: csv.Error) -> str:
    if "field limit" in str(error):
        return f"A field of the row is longer than {csv.field_size_limit()} characters: it cannot be read."
    return f"The row cannot be read as CSV ({error})."


def _audience_row(header: list[str], values: list[str]) -> dict:
    row: dict = {"client_id": "", "Contact": {}, "CustomProperties": {}}
    for column, value in zip(header, values, strict=False):
        value = value.strip()
        section, _, name = column.partition(".")
        if column == "client_id":
            row["client_id"] = value
        elif section in ("Contact", "CustomProperties") and name and value:
            row[section][name] = value
    return row


def audience_csv_open(*, binary) -> AudienceCsv:
    """Check an audience CSV (a file object of bytes) whole before anything is stored: UTF-8 text, with a
    header row that has a client_id column. Reads it once in blocks; refused: InvalidParameter on `file`."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    binary.seek(0)
    lines, head = 0, ""
    try:
        while block := binary.read(1 << 20):
            lines += block.count(b"\n")
            decoded = decoder.decode(block)
            if len(head) < 1 << 16:
                head += decoded[: (1 << 16) - len(head)]
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise InvalidParameter("The CSV file is not UTF-8 text.", field="file") from error
    try:
        header = next(csv.reader(io.StringIO(head)), None)
    except csv.Error:
        header = None
    columns = [name.strip() for name in header or []]
    if "client_id" not in columns:
        raise InvalidParameter("The CSV needs a header row with a client_id column.", field="file")
    return AudienceCsv(binary=binary, columns=columns, lines=lines, name=str(getattr(binary, "name", "") or ""))


def _columns_of_rows(rows: list) -> set[str]:
    """`Section.name` of every value some row carries (JSON recipients)."""
    columns = set()
    for row in rows:
        if isinstance(row, dict):
            for section in ("Contact", "CustomProperties"):
                values = row.get(section)
                if isinstance(values, dict):
                    columns.update(f"{section}.{name}" for name in values if isinstance(name, str))
    return columns


def audience_unfillable_codes(*, response: StandardResponse, columns) -> list[str]:
    """The response's field codes that no row of an audience with these `Section.name` columns can fill,
    each with why: an Agent code (a campaign has no agent), an Interaction code the server does not fill,
    a Contact or CustomProperties code without its column (names compared regardless of case, as
    rendering does)."""
    folded = {column.casefold() for column in columns}
    return _unfillable_codes(response, lambda code, section, name: code.casefold() in folded, "no {code} column")


def _unfillable_codes(response: StandardResponse, has_values, missing: str) -> list[str]:
    """The field codes of `response` no recipient can fill, each with why; `has_values(code, section, name)`
    says whether some row can fill a Contact or CustomProperties code (`missing` says why not)."""
    refused = []
    for code in response.field_codes():
        section, _, name = code.partition(".")
        if section == "Agent":
            refused.append(f"{code} (a campaign has no agent to fill it)")
        elif section == "Interaction" and name not in INTERACTION_FIELD_CODES:
            refused.append(f"{code} (an interaction has no such value)")
        elif section == "Contact" and name in DERIVED_CONTACT_PROPERTIES:
            continue
        elif section in ("Contact", "CustomProperties") and not has_values(code, section, name):
            refused.append(f"{code} ({missing.format(code=code)})")
    return refused


def _refuse_unfillable(response: StandardResponse, columns, field_name: str) -> None:
    if unfillable := audience_unfillable_codes(response=response, columns=columns):
        raise InvalidParameter(
            f"The standard response {response.pk} has field codes no row can fill: {', '.join(unfillable)}. "
            "Nothing was stored: add the columns, or choose another standard response.",
            field=field_name,
        )


def _refuse_unfillable_at_start(campaign: Campaign) -> None:
    """At start: the response may have changed since the audience was uploaded. One query a Contact or
    CustomProperties code (does any recipient to send carry it?), never a look at every recipient."""
    to_send = campaign.recipients.filter(error="")
    json_field = {"Contact": "contact_fields", "CustomProperties": "custom_properties"}

    def has_values(code, section, name):
        return to_send.filter(**{f"{json_field[section]}__has_key": name}).exists()

    variants = campaign_variants(campaign_id=campaign.pk)
    responses = [(v.standard_response, "variants") for v in variants] or [(campaign.standard_response,
                                                                          "standard_response")]
    for response, field_name in responses:
        if unfillable := _unfillable_codes(response, has_values, "no recipient has a value for it"):
            raise InvalidParameter(
                f"The standard response {response.pk} has field codes no recipient can fill: "
                f"{', '.join(unfillable)}. Choose another standard response, or a new audience.",
                field=field_name,
            )


def _required_codes(response: StandardResponse) -> list[tuple[str, str]]:
    codes = []
    for code in response.field_codes():
        section, _, name = code.partition(".")
        if section == "Contact" and name not in DERIVED_CONTACT_PROPERTIES:
            codes.append((section, name))
        elif section == "CustomProperties":
            codes.append((section, name))
    return codes


def _refused_row(number: int, client_id: str, reasons: list[str]) -> CampaignRecipient:
    """A row refused at upload, kept with its reasons so that the results list every row of the audience.
    Nothing of the row but its client id is kept (escaped: it may be what broke the text rules)."""
    return CampaignRecipient(row_number=number, client_id=escaped(client_id)[:200], error=" ".join(reasons)[:500])


def audience_validate(*, channel: Channel, response: StandardResponse, rows: list, first_row: int = 1,
                      report: AudienceReport | None = None):
    """Check every row before anything is stored: the text rules, a client id,
    a phone number that parses on phone channels, and a value for every
    Contact and CustomProperties field code of the response. Returns
    (recipients to store, report); a refused row is a recipient too, with its
    reasons in `error` (API.md "Campaign outcomes"), and so is a client id
    seen before in `rows` (sent once, with the first row)."""
    required = _required_codes(response)
    business_number = _business_number_to_check(channel)
    report = report if report is not None else AudienceReport()
    recipients, seen = [], {}

    for offset, row in enumerate(rows):
        number = first_row + offset
        client_id, errors, contact, custom = _check_row(row, required, business_number)
        if errors:
            report.refuse({"row": number, "client_id": escaped(client_id), "errors": errors})
            recipients.append(_refused_row(number, client_id, errors))
            continue
        if client_id in seen:
            reason = _duplicate_reason(seen[client_id])
            report.repeat({"row": number, "client_id": client_id, "errors": [reason]})
            recipients.append(_refused_row(number, client_id, [reason]))
            continue
        seen[client_id] = number
        recipients.append(
            CampaignRecipient(row_number=number, client_id=client_id, contact_fields=contact, custom_properties=custom)
        )
    return recipients, report


def _business_number_to_check(channel: Channel) -> str | None:
    """The business number client ids are read with when they must be phone numbers (None: any client id)."""
    return channel.business_id if channel.media_type in ("whatsapp", "sms") else None


def _check_row(row, required: list[tuple[str, str]], business_number: str | None):
    """One audience row by every rule: (client_id, errors, Contact, CustomProperties); errors empty when taken."""
    if isinstance(row, UnreadableRow):
        return "", [row.reason], None, None
    if not isinstance(row, dict):
        return "", ["A recipient must be an object."], None, None
    client_id = str(row.get("client_id") or "").strip()
    if found := text_rule_broken_at(row):  # PostgreSQL cannot store it: it was a 500
        where, broken = found
        return client_id, [text_rule_message(where, broken)], None, None
    errors = []
    contact = row.get("Contact") or {}
    custom = row.get("CustomProperties") or {}
    if not isinstance(contact, dict) or not isinstance(custom, dict):
        errors.append("Contact and CustomProperties must be objects.")
        contact, custom = {}, {}
    if not client_id:
        errors.append("client_id is missing.")
    elif len(client_id) > 200:
        errors.append("client_id is longer than 200 characters.")
    elif business_number is not None and normalize_client_phone(client_id, business_number) is None:
        errors.append("client_id is not a phone number.")
    values = {"Contact": contact, "CustomProperties": custom}
    for section, name in required:
        if str(values[section].get(name, "")).strip() == "":
            errors.append(f"No value for field code {section}.{name}.")
    return client_id, errors, contact, custom


DUPLICATE_REASON_START = "Sent once:"


def _duplicate_reason(first_row: int | None) -> str:
    where = f"row {first_row}" if first_row else "an earlier row"
    return f"{DUPLICATE_REASON_START} the client_id is already on {where}."


def _store_chunk(campaign: Campaign, rows: list, first_row: int, report: AudienceReport,
                 header: CsvHeader | None = None) -> None:
    """Validate and store one chunk of an audience (`rows`: JSON recipients, or a CSV's rows under `header`): a
    client id already stored for the campaign (an earlier upload, an earlier chunk) makes the row a repeat of
    that row. PostgreSQL: `_copy_chunk`; elsewhere model objects in bulk."""
    if connection.vendor == "postgresql":
        _copy_chunk(campaign, rows, first_row, report, header)
        return
    if header is not None:
        rows = [row if isinstance(row, UnreadableRow) else _audience_row(header.columns, row) for row in rows]
    recipients, report = audience_validate(
        channel=campaign.channel, response=campaign.standard_response, rows=rows, first_row=first_row,
        report=report,
    )
    earlier = dict(
        campaign.recipients.filter(client_id__in=[r.client_id for r in recipients if not r.error], error="")
        .values_list("client_id", "row_number")
    )
    for recipient in recipients:
        if not recipient.error and recipient.client_id in earlier:
            recipient.error = _duplicate_reason(earlier[recipient.client_id])
            report.repeat({"row": recipient.row_number, "client_id": recipient.client_id,
                           "errors": [recipient.error]})
        recipient.campaign = campaign
    report.accepted += sum(1 for recipient in recipients if not recipient.error)
    now = timezone.now()
    for recipient in recipients:
        if recipient.error:  # refused at upload: the campaign reached it now (its report counts it)
            recipient.reached_at = now
    if campaign.send_window:  # outside its window now: it waits, out of the index of those to send
        accepted = [recipient for recipient in recipients if not recipient.error]
        for recipient, opening in zip(accepted, send_window_openings(campaign=campaign, recipients=accepted,
                                                                     now=now), strict=True):
            recipient.next_window_at = opening
    bulk_insert_rows(CampaignRecipient, recipients)  # COPY on PostgreSQL
    report_recipients_reached(campaign_id=campaign.pk, reached=[(None, bool(r.error)) for r in recipients
                                                                if r.error], at=now)


# A refused row is reached by the campaign when it is stored (the campaign report counts it then).
RECIPIENT_COPY_FIELDS = ["campaign", "row_number", "client_id", "contact_fields", "custom_properties", "error",
                         "reached_at"]
# With a send window, each row also carries when its window opens (None: open now, or refused).
WINDOWED_COPY_FIELDS = [*RECIPIENT_COPY_FIELDS, "next_window_at"]
WINDOW_SLICE = 1000  # rows whose zones are found together (one query for their contacts)


def _with_window_openings(campaign: Campaign, entries: list[tuple], now) -> list[tuple]:
    """The COPY's tuples, each with the next opening of its recipient's window (send_window_openings) added:
    a recipient outside its window is stored waiting, and never enters the index of those to send
    (recipient_to_send) before its window opens, so the batches never look at it until then (issue 27). Decided
    before the COPY (whose connection takes no other query while it runs), a slice of rows a query."""
    per_recipient_zone = (campaign.send_window or {}).get("timezone") == RECIPIENT
    accepted = [entry for entry in entries if not entry[5]]
    openings = []
    for start in range(0, len(accepted), WINDOW_SLICE):
        openings += send_window_openings(
            campaign=campaign, now=now,
            recipients=[AudienceEntry(entry[2], json.loads(entry[3]) if per_recipient_zone else {})
                        for entry in accepted[start:start + WINDOW_SLICE]])
    waiting = iter(openings)
    return [(*entry, None if entry[5] else next(waiting)) for entry in entries]


def _copy_chunk(campaign: Campaign, rows: list, first_row: int, report: AudienceReport,
                header: CsvHeader | None) -> None:
    """_store_chunk on PostgreSQL: every row checked (a CSV row the fast path takes whole without the general
    path's dictionaries, services/audience_rows.py) and written as a tuple into one COPY while the next rows are
    checked. A repeat within the chunk is found here; a repeat of a row stored before (an earlier chunk or
    upload) is found by the unique index: the COPY fails, its savepoint is rolled back, and the chunk is written
    again with those rows marked (one query for them), so that the common audience pays no look-up."""
    required = _required_codes(campaign.standard_response)
    business_number = _business_number_to_check(campaign.channel)
    columns = header.columns if header is not None else None
    fast_row = csv_fast_row(columns, required, business_number=business_number,
                            check_text=header.check_text) if header is not None else None
    campaign_id, stored, seen, now = campaign.pk, [], {}, timezone.now()

    def checked():
        """Each row as it is stored: (campaign, row number, client id, Contact JSON, CustomProperties JSON, error,
        reached at)."""
        for offset, row in enumerate(rows):
            number = first_row + offset
            taken = fast_row(row) if fast_row is not None and type(row) is list else None
            if taken is None:  # the general path: it says why a row is refused
                if columns is not None and type(row) is list:
                    row = _audience_row(columns, row)
                client_id, errors, contact, custom = _check_row(row, required, business_number)
                if errors:
                    report.refuse({"row": number, "client_id": escaped(client_id), "errors": errors})
                    entry = (campaign_id, number, escaped(client_id)[:200], "{}", "{}", " ".join(errors)[:500], now)
                    stored.append(entry)
                    yield entry
                    continue
                taken = (client_id, json.dumps(contact, ensure_ascii=False), json.dumps(custom, ensure_ascii=False))
            client_id = taken[0]
            first = seen.get(client_id)
            if first is None:
                seen[client_id] = number
                entry = (campaign_id, number, *taken, "", None)
            else:
                reason = _duplicate_reason(first)
                report.repeat({"row": number, "client_id": client_id, "errors": [reason]})
                entry = (campaign_id, number, escaped(client_id)[:200], "{}", "{}", reason, now)
            stored.append(entry)
            yield entry

    rows_checked = checked()
    fields = RECIPIENT_COPY_FIELDS
    if campaign.send_window:  # (the rows are then checked whole before the COPY, not while it writes)
        rows_checked, fields = iter(_with_window_openings(campaign, list(rows_checked), now)), WINDOWED_COPY_FIELDS
    try:
        with transaction.atomic():  # a savepoint: only this COPY is undone when a client id was stored before
            copy_rows(CampaignRecipient, fields, rows_checked)
    except UniqueViolation as error:
        if error.diag.constraint_name != "recipient_unique_client_per_campaign":
            raise
        for _ in rows_checked:  # the rows after the one that failed (when it failed before the end)
            pass
        stored = _mark_stored_before(campaign_id, stored, report, now)
        if campaign.send_window:
            stored = _with_window_openings(campaign, stored, now)
        copy_rows(CampaignRecipient, fields, stored)
    refused = sum(1 for entry in stored if entry[5])
    report.accepted += len(stored) - refused
    report_recipients_reached(campaign_id=campaign_id, reached=[(None, True)] * refused, at=now)


def _mark_stored_before(campaign_id: int, stored: list[tuple], report: AudienceReport, now) -> list[tuple]:
    """The chunk's rows with those whose client id the campaign already has (taken, from an earlier chunk or
    upload) refused as repeats of that row."""
    taken = [entry[2] for entry in stored if not entry[5]]
    table = connection.ops.quote_name(CampaignRecipient._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT client_id, row_number FROM {table} "
                       "WHERE campaign_id = %s AND error = '' AND client_id = ANY(%s)", [campaign_id, taken])
        earlier = dict(cursor.fetchall())
    marked = []
    for entry in stored:
        if not entry[5] and entry[2] in earlier:
            reason = _duplicate_reason(earlier[entry[2]])
            report.repeat({"row": entry[1], "client_id": entry[2], "errors": [reason]})
            entry = (*entry[:5], reason, now)
        marked.append(entry)
    return marked


def _lock_for_upload(campaign: Campaign) -> Campaign:
    campaign = Campaign.objects.select_for_update().select_related("channel", "standard_response").get(
        pk=campaign.pk)
    if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
        raise InvalidParameter(f"Recipients cannot be added to a {campaign.state} campaign.", field="recipients")
    if campaign.segment_id is not None:
        raise InvalidParameter(f"The campaign takes its audience from segment {campaign.segment_id} when it "
                               "starts: recipients cannot be added.", field="recipients")
    if loading := _loading(campaign):
        raise CampaignStateConflict(f"The audience {loading} is still being read: add more once it is stored.",
                                    field="recipients")
    return campaign


def _loading(campaign: Campaign) -> str:
    """The audience file a worker is still reading into the campaign ("" when none), e.g.
    "audience.csv (row 40,000 of about 1,000,000)"."""
    report = campaign.upload_report or {}
    if report.get("state") != LOADING:
        return ""
    return f"{report.get('file') or 'file'} (row {report.get('rows_read', 0):,} of about {report.get('lines', 0):,})"


@transaction.atomic
def campaign_add_recipients(*, campaign: Campaign, rows=None, audience: AudienceCsv | None = None) -> AudienceReport:
    """Validate an audience (JSON `rows`, or an `audience` CSV) and store it in chunks, each in bulk (a draft
    or scheduled campaign only); its report is kept on the campaign. A standard response whose field codes
    no row can fill refuses the whole upload first, naming the codes. A CSV of more than AUDIENCE_INLINE_ROWS
    lines is read by a worker instead (campaign_audience_load): the report says LOADING, and the campaign's
    `upload_report` follows its progress."""
    campaign = _lock_for_upload(campaign)
    if audience is not None:
        _refuse_unfillable(campaign.standard_response, audience.columns, "file")
        if audience.lines > settings.AUDIENCE_INLINE_ROWS:
            return _load_later(campaign, audience)
        rows = audience.rows()
        header = next(rows)
    else:
        header = None
        if rows:
            _refuse_unfillable(campaign.standard_response, _columns_of_rows(rows), "recipients")
    report = AudienceReport()
    next_row = recipient_next_row(campaign_id=campaign.pk)
    for chunk in _chunks(rows or [], AUDIENCE_CHUNK):
        _store_chunk(campaign, chunk, next_row, report, header)
        next_row += chunk.read
    if audience is not None or rows:  # an upload, not a campaign created without an audience
        campaign_keep_upload_report(campaign=campaign, report=report, file_name=audience.name if audience else "")
    return report


AUDIENCE_DIR = "campaign-audiences"  # of the default storage: the files read in the background


def _load_later(campaign: Campaign, audience: AudienceCsv) -> AudienceReport:
    """Keep the file where every worker reads it (the default storage) and hand it to the bulk lane."""
    from django.core.files import File
    from django.core.files.storage import default_storage

    path = default_storage.save(f"{AUDIENCE_DIR}/{campaign.pk}-{uuid.uuid4().hex}.csv", File(audience.binary))
    now = timezone.now().isoformat()
    kept = {"state": LOADING, "file": audience.name, "path": path, "lines": audience.lines, "rows_read": 0,
            "first_row": recipient_next_row(campaign_id=campaign.pk), "accepted": 0, "rejected": [],
            "rejected_total": 0, "duplicates": [], "duplicate_rows": [], "duplicates_total": 0, "at": now,
            "updated_at": now}
    Campaign.objects.filter(pk=campaign.pk).update(upload_report=kept)
    campaign.upload_report = kept
    transaction.on_commit(lambda: publish(CAMPAIGN_AUDIENCE_LOAD, campaign.pk, path))
    return AudienceReport(state=LOADING, lines=audience.lines)


def campaign_audience_load(*, campaign_id: int, path: str) -> int:
    """Read an audience file kept by campaign_add_recipients into its campaign, a chunk a transaction: each
    chunk's rows and the progress in `upload_report` commit together, so that a run after a worker's death
    goes on from the last chunk stored, and a second run of the same file stops at its first chunk (the
    progress moved on under it). Returns the rows read by this run."""
    from django.core.files.storage import default_storage

    found = list(Campaign.objects.filter(pk=campaign_id).values_list("upload_report", flat=True)[:1])
    if not found:  # the campaign is gone: so is its audience (a file named after it, never another)
        if re.fullmatch(rf"{AUDIENCE_DIR}/{campaign_id}-[0-9a-f]{{32}}(_[0-9A-Za-z]{{7}})?\.csv", path):
            default_storage.delete(path)
        return 0
    report = found[0] or {}
    if report.get("path") != path or report.get("state") != LOADING:
        return 0  # done already, or replaced
    done = start = report["rows_read"]
    try:
        opened = default_storage.open(path, "rb")
    except FileNotFoundError:  # lost (a volume the worker does not share, a cleaned folder): never found again
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
            kept = (campaign.upload_report or {}) if campaign else {}
            if kept.get("path") == path and kept.get("state") == LOADING:
                _keep_progress(campaign, kept, state="stopped", error=f"The audience file is no longer there: rows "
                               f"from {done + 1} on were not stored. Upload it again.")
        return 0
    with opened as binary, closing(AudienceCsv(binary=binary, columns=[], lines=0).rows()) as every_row:
        header = next(every_row)
        rows = itertools.islice(every_row, done, None)
        for chunk in _chunks(rows, AUDIENCE_CHUNK):
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    # The chunk's rows and its progress commit together: a commit lost with the server is the
                    # chunk read again by the run that resumes, so the commit need not wait for the disk.
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit TO OFF")
                campaign = (Campaign.objects.select_for_update().select_related("channel", "standard_response")
                            .filter(pk=campaign_id).first())
                if campaign is None:  # deleted meanwhile
                    break
                kept = campaign.upload_report or {}
                if kept.get("path") != path or kept.get("state") != LOADING or kept.get("rows_read") != done:
                    return done - start  # replaced, or another run is ahead (it deletes the file)
                if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                    _keep_progress(campaign, kept, state="stopped", error=f"The campaign was {campaign.state} "
                                   f"before its audience was read: rows from {done + 1} on were not stored.")
                    break
                report = AudienceReport(limit=REJECTED_ROWS_KEPT)
                _store_chunk(campaign, chunk, kept["first_row"] + done, report, header)
                done += chunk.read
                _keep_progress(campaign, kept, report=report, rows_read=done)
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        kept = (campaign.upload_report or {}) if campaign else {}
        if kept.get("path") == path and kept.get("state") == LOADING:
            _keep_progress(campaign, kept, state="done")
    default_storage.delete(path)
    return done - start


def _keep_progress(campaign: Campaign, kept: dict, *, report: AudienceReport | None = None, **changes) -> None:
    kept = {**kept, **changes, "updated_at": timezone.now().isoformat()}
    if report is not None:
        kept["accepted"] += report.accepted
        kept["rejected_total"] += report.rejected_total
        kept["duplicates_total"] += report.duplicates_total
        room = REJECTED_ROWS_KEPT - len(kept["rejected"])
        kept["rejected"] = kept["rejected"] + report.rejected[:max(room, 0)]
        room = REJECTED_ROWS_KEPT - len(kept["duplicate_rows"])
        kept["duplicate_rows"] = kept["duplicate_rows"] + report.duplicate_rows[:max(room, 0)]
        kept["duplicates"] = [row["row"] for row in kept["duplicate_rows"]]
    Campaign.objects.filter(pk=campaign.pk).update(upload_report=kept)
    campaign.upload_report = kept


def audiences_resume(*, now: datetime | None = None) -> int:
    """Periodic (with campaigns_tick): publish again the audience loads that made no progress for
    AUDIENCE_STALLED (their task lost with the broker, say); a load still running stops at its next chunk."""
    now = now or timezone.now()
    resumed = 0
    for pk, report in Campaign.objects.filter(upload_report__state=LOADING).values_list("pk", "upload_report"):
        if datetime.fromisoformat(report["updated_at"]) < now - AUDIENCE_STALLED:
            publish(CAMPAIGN_AUDIENCE_LOAD, pk, report["path"])
            resumed += 1
    return resumed


def _chunks(rows, size: int):
    """`rows` by chunks of up to `size`, each read as it is iterated (so PostgreSQL stores the first rows of a
    chunk while the file's next ones are read); after it, `chunk.read` says how many rows it had."""
    iterator = iter(rows)
    end = object()
    while (first := next(iterator, end)) is not end:
        chunk = _Chunk(first, iterator, size)
        yield chunk
        for _ in chunk:  # the rest of a chunk its reader left (none does: a safeguard for the count)
            pass


class _Chunk:
    def __init__(self, first, rows, size: int):
        self.read = 0
        self._rows = self._read(first, rows, size)

    def __iter__(self):
        return self._rows  # one pass: iterating again goes on where the last one stopped

    def _read(self, first, rows, size: int):
        self.read = 1
        yield first
        for row in itertools.islice(rows, size - 1):
            self.read += 1
            yield row


@transaction.atomic
def campaign_create(
    *,
    name: str,
    channel: Channel,
    standard_response: StandardResponse,
    rows: list | None = None,
    audience: AudienceCsv | None = None,
    rate_per_second: int | None = None,
    start_at: datetime | None = None,
    terminate_sessions: bool = True,
    chat_queue_key: str = "",
    created_by=None,
    variants: list | None = None,
    segment: Segment | None = None,
    send_window: dict | None = None,
) -> tuple[Campaign, AudienceReport]:
    """A campaign with its audience: uploaded rows (`rows` or an `audience` CSV), or a `segment` of the
    channel's tenant whose contacts it takes when it starts; an optional `send_window` (send_windows.py) and
    its variants (services/variants.py), all checked before anything is stored. With variants,
    `standard_response` may be None: the first variant's is the campaign's own."""
    window = _audience_and_window_check(channel=channel, segment=segment, send_window=send_window,
                                        uploaded=bool(rows) or audience is not None)
    specs = variants_parse(channel=channel, entries=variants) if variants else []
    if standard_response is None:
        if not specs:
            raise InvalidParameter("A standard response, or variants, is required.", field="standard_response")
        standard_response = specs[0].standard_response
    if specs and (rows or audience is not None):
        columns = audience.columns if audience is not None else _columns_of_rows(rows or [])
        for spec in specs:
            _refuse_unfillable(spec.standard_response, columns, "variants")
    if chat_queue_key:
        try:
            validate_queue_key(chat_queue_key, tenant_id=channel.tenant_id)
        except Exception as error:
            messages = getattr(error, "messages", [str(error)])
            raise InvalidParameter(" ".join(messages), field="chat_queue_key") from error
    campaign = Campaign(
        name=name, channel=channel, standard_response=standard_response, rate_per_second=rate_per_second,
        start_at=start_at, terminate_sessions=terminate_sessions, chat_queue_key=chat_queue_key, created_by=created_by,
        segment=segment, send_window=window.as_dict() if window else None,
    )
    try:
        campaign.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    campaign.save()
    if specs:
        variants_store(campaign=campaign, specs=specs)
    if segment is not None:  # its audience is taken when it starts
        return campaign, AudienceReport()
    report = campaign_add_recipients(campaign=campaign, rows=rows or [], audience=audience)
    campaign.upload_report = Campaign.objects.values_list("upload_report", flat=True).get(pk=campaign.pk)
    return campaign, report


def _audience_and_window_check(*, channel: Channel, segment, send_window, uploaded: bool):
    """A segment is of the channel's tenant and replaces an uploaded audience; the send window is checked whole
    (send_windows.send_window_parse). Returns the window (or None)."""
    if segment is not None and segment.tenant_id != channel.tenant_id:
        raise InvalidParameter(f"Segment {segment.pk} is not of the channel's tenant.", field="segment")
    if segment is not None and uploaded:
        raise InvalidParameter("A campaign takes its audience from a segment or from recipients, not both.",
                               field="segment")
    return send_window_parse(send_window)


def _segment_unfillable_codes(*, campaign: Campaign) -> list[str]:
    """The campaign response's field codes no contact of its segment can fill, each with why: Contact codes are
    filled from the contact (one query a code: does any contact of the segment have it?); a segment carries
    no CustomProperties."""
    from channels_app.services.contacts import STANDARD_PROPERTIES

    contacts = segment_contacts(segment=campaign.segment)

    def has_values(code, section, name):
        if section != "Contact":
            return False
        if column := STANDARD_PROPERTIES.get(name):
            return contacts.exclude(**{column: ""}).exists()
        return contacts.filter(attributes__has_key=name).exists()

    return _unfillable_codes(campaign.standard_response, has_values, "no contact of the segment has a value for it")


def _segment_audience_check(*, campaign: Campaign) -> None:
    """Before a campaign built from a segment starts (or is scheduled): a response whose field codes its
    contacts cannot fill is 400 naming `standard_response`; a segment without contacts is 409."""
    if not segment_contacts(segment=campaign.segment).exists():
        raise CampaignStateConflict(f"Segment {campaign.segment_id} holds no contact to send to.", field="segment")
    if unfillable := _segment_unfillable_codes(campaign=campaign):
        raise InvalidParameter(
            f"The standard response {campaign.standard_response_id} has field codes no contact of segment "
            f"{campaign.segment_id} can fill: {', '.join(unfillable)}. Choose another standard response.",
            field="standard_response")


UNCHANGED = object()


@transaction.atomic
def campaign_update(
    *,
    campaign: Campaign,
    name: str,
    channel: Channel,
    standard_response: StandardResponse,
    rate_per_second: int | None,
    start_at: datetime | None,
    terminate_sessions: bool,
    chat_queue_key: str,
    segment=UNCHANGED,
    send_window=UNCHANGED,
) -> Campaign:
    """Change a draft or scheduled campaign's settings (its audience is added with campaign_add_recipients)."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
        raise CampaignStateConflict(f"A {locked.state} campaign cannot be changed.", field="state")
    segment = locked.segment if segment is UNCHANGED else segment
    window = _audience_and_window_check(
        channel=channel, segment=segment, send_window=locked.send_window if send_window is UNCHANGED else send_window,
        uploaded=segment is not None and segment.pk != locked.segment_id and locked.recipients.exists())
    campaign.segment = segment
    campaign.send_window = window.as_dict() if window else None
    # (the channel holds the tenant's zone and the numbers' reading: a recipient's zone may change with it)
    window_changed = campaign.send_window != locked.send_window or channel.pk != locked.channel_id
    if chat_queue_key:
        try:
            validate_queue_key(chat_queue_key, tenant_id=channel.tenant_id)
        except ValidationError as error:
            raise InvalidParameter(" ".join(error.messages), field="chat_queue_key") from error
    for key, value in (("name", name), ("channel", channel), ("standard_response", standard_response),
                       ("rate_per_second", rate_per_second), ("start_at", start_at),
                       ("terminate_sessions", terminate_sessions), ("chat_queue_key", chat_queue_key)):
        setattr(campaign, key, value)
    try:
        campaign.full_clean()
    except ValidationError as error:
        raise InvalidFields.from_django(error) from error
    # Only the settings: the state may have moved on since the caller read the campaign.
    campaign.save(update_fields=["name", "channel", "standard_response", "rate_per_second", "start_at",
                                 "terminate_sessions", "chat_queue_key", "segment", "send_window"])
    if window_changed:  # its stored audience waits for the old window: decided again for the new one
        send_window_changed(campaign=campaign, now=timezone.now())
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a campaign that is not running or scheduled (cancel it first)."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.state in (CampaignState.RUNNING, CampaignState.SCHEDULED):
        raise InvalidParameter("Cancel the campaign before deleting it.", field="state")
    kept = campaign.upload_report or {}
    campaign.delete()
    if kept.get("state") == LOADING and kept.get("path"):  # its audience file, not yet read: customers' numbers
        from django.core.files.storage import default_storage

        transaction.on_commit(lambda: default_storage.delete(kept["path"]))


# --- state machine ------------------------------------------------------------

ALLOWED = {
    "start": ({CampaignState.DRAFT}, None),
    "pause": ({CampaignState.RUNNING, CampaignState.SCHEDULED}, CampaignState.PAUSED),
    "resume": ({CampaignState.PAUSED}, CampaignState.RUNNING),
    "cancel": ({CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.RUNNING, CampaignState.PAUSED},
               CampaignState.CANCELLED),
}


@transaction.atomic
def campaign_transition(*, campaign_id: int, action: str) -> Campaign:
    """start, pause, resume or cancel; a running campaign's batches see the change within a second."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
    allowed_from, target = ALLOWED[action]
    if campaign.state not in allowed_from:
        raise CampaignStateConflict(f"A {campaign.state} campaign cannot {action}.", field="state")
    now = timezone.now()
    if action in ("start", "resume") and campaign.segment_id is not None:
        if campaign.started_at is None:  # its audience is not taken yet
            _segment_audience_check(campaign=campaign)
        target = CampaignState.SCHEDULED if campaign.start_at and campaign.start_at > now else CampaignState.RUNNING
        if target == CampaignState.RUNNING and campaign.started_at is None:
            segment_audience_take(campaign=campaign)  # "its audience is the segment's contacts when it starts"
    elif action in ("start", "resume"):
        if action == "start" and (loading := _loading(campaign)):
            raise CampaignStateConflict(f"The audience {loading} is still being read: start the campaign once "
                                        "it is stored.", field="recipients")
        if action == "start" and not campaign.recipients.filter(error="").exists():
            raise CampaignStateConflict("The campaign has no recipients to send to.", field="recipients")
        if action == "start":
            _refuse_unfillable_at_start(campaign)
        # A campaign whose start time is still ahead waits for it, also when it was paused while waiting.
        target = CampaignState.SCHEDULED if campaign.start_at and campaign.start_at > now else CampaignState.RUNNING
    campaign.state = target
    if target == CampaignState.RUNNING and campaign.started_at is None:
        campaign.started_at = now
    if target == CampaignState.CANCELLED:
        campaign.finished_at = now
    campaign.save()
    if target == CampaignState.RUNNING:
        transaction.on_commit(lambda: campaign_kick(campaign.pk))
    return campaign


def campaign_kick(campaign_id: int, chains: int = PARALLEL_CHAINS) -> None:
    for _ in range(chains):
        publish(CAMPAIGN_BATCH, campaign_id)


def campaigns_tick(*, now: datetime | None = None) -> int:
    """Periodic: start scheduled campaigns that are due, and keep running ones
    moving (after a restart of workers or broker, a batch task may be lost)."""
    now = now or timezone.now()
    audiences_resume(now=now)
    # A scheduled campaign whose audience is still being read waits for it.
    due_rows = list(Campaign.objects.filter(state=CampaignState.SCHEDULED, start_at__lte=now)
                    # (has_key: a campaign without an upload report, one built from a segment, is not loading;
                    # `state = loading` alone is NULL for it, and NOT NULL excluded it)
                    .exclude(Q(upload_report__has_key="state") & Q(upload_report__state=LOADING))
                    .values_list("pk", "name", "channel__tenant_id"))
    due = [pk for pk, _, _ in due_rows]
    # Campaigns built from a segment take its contacts now, as they start for the first time.
    from_segment = set(Campaign.objects.filter(pk__in=due, segment__isnull=False, started_at__isnull=True)
                       .values_list("pk", flat=True))
    with transaction.atomic():
        # Only those still scheduled: one paused (or cancelled) since they were read stays as it is.
        started = set(
            Campaign.objects.select_for_update()
            .filter(pk__in=due, state=CampaignState.SCHEDULED)
            .values_list("pk", flat=True)
        )
        Campaign.objects.filter(pk__in=started).update(state=CampaignState.RUNNING, started_at=now)
        for campaign in Campaign.objects.filter(pk__in=started & from_segment).select_related("channel", "segment"):
            segment_audience_take(campaign=campaign)
        for pk, name, tenant_id in due_rows:
            if pk in started:
                _audit_system_state_change(pk, name, tenant_id, CampaignState.SCHEDULED, CampaignState.RUNNING)
    due = [pk for pk in due if pk in started]
    for campaign_id in due:
        campaign_kick(campaign_id)
    # A running campaign is completed once every recipient has a final outcome; one with recipients still to
    # invite and no batch for this long may have lost its tasks: kick it again. One whose recipients are all
    # invited waits for its deliveries (their retries, the relay after a worker's death), not for a batch.
    quiet_since = now - timedelta(seconds=settings.CAMPAIGN_STALLED_SECONDS)
    running = Campaign.objects.filter(state=CampaignState.RUNNING).exclude(pk__in=due)
    kicked = 0
    for campaign_id, heartbeat_at in running.values_list("pk", "heartbeat_at"):
        if _complete_if_done(campaign_id) != TO_INVITE:
            continue
        if heartbeat_at is None or heartbeat_at < quiet_since:
            campaign_kick(campaign_id)
            kicked += 1
    return len(due) + kicked


# --- execution ----------------------------------------------------------------


WINDOW_REFILL_ROUNDS = 4  # claims more a batch makes for the recipients its send window held back


def _unleased(now: datetime) -> Q:
    """Recipients no live lease holds: never claimed with one, or their lease run out."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def _claim_batch(campaign_id: int, now: datetime, size: int, windowed: bool = False) -> list[int]:
    """Recipients to send, in row order, that no live batch holds; with a send window, first those whose window
    has opened since they were held back (each from its own index: recipients still waiting are never read)."""
    free = _unleased(now)
    with transaction.atomic():
        ids = []
        if windowed:
            ids = list(
                CampaignRecipient.objects.select_for_update(skip_locked=True)
                .filter(due_recipients_filter(now), free, campaign_id=campaign_id)
                .order_by("next_window_at")
                .values_list("pk", flat=True)[:size]
            )
        if len(ids) < size:
            ids += [recipient.pk for recipient in _claim_in_row_order(campaign_id, free, size - len(ids))]
        lease = timedelta(seconds=settings.CAMPAIGN_CLAIM_LEASE_SECONDS)
        CampaignRecipient.objects.filter(pk__in=ids).update(claimed_until=now + lease)
    return ids


# Per campaign, the row number this process's last claim in row order began at (a hint, kept in memory).
# A recipient invited leaves the partial index recipient_to_send, but its entry stays there until VACUUM
# passes, so a claim that walks the index from the campaign's first row reads every recipient invited since
# the last vacuum (autovacuum comes at 20% of the table dead): a claim's cost grew with the campaign, 11
# buffers at the front of the audience against 1,772 at 90,000 sent of 100,000 and 17,300 (600 ms) at
# 900,000 of 1,000,000 (docs/PERFORMANCE.md, lever 6). Starting at the hint reads only what lies past it.
_claim_floor: dict[int, int] = {}


def _claim_in_row_order(campaign_id: int, free: Q, size: int,
                        fields: tuple[str, ...] = ("pk",)) -> list[CampaignRecipient]:
    """Up to `size` free recipients to send, in row order, locked until the caller's transaction ends, from
    this process's hint on; when none lie past it (the end of the audience, or rows before it given back: a
    lease run out, a send window changed), from the first row again, so that the hint can delay a recipient but
    never lose one. Only `fields` (and the row number) are read."""
    to_send = CampaignRecipient.objects.select_for_update(skip_locked=True).filter(
        campaign_id=campaign_id, message__isnull=True, error="", next_window_at__isnull=True).filter(free)
    to_send = to_send.only(*fields, "row_number").order_by("row_number")
    floor = _claim_floor.get(campaign_id)
    rows = []
    if floor is not None:
        rows = list(to_send.filter(row_number__gte=floor)[:size])
    if not rows:
        rows = list(to_send[:size])
    if rows:
        _claim_floor[campaign_id] = rows[0].row_number
    else:
        _claim_floor.pop(campaign_id, None)
    return rows


def _reserve_send_times(campaign_id: int, count: int, rate: int) -> list[datetime]:
    """When each of `count` messages may leave; the campaign's next free slot
    moves past them, so the rate holds across all workers."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().only("throttle_next_slot").get(pk=campaign_id)
        start = max(campaign.throttle_next_slot or timezone.now(), timezone.now())
        campaign.throttle_next_slot = start + timedelta(seconds=count / rate)
        campaign.save(update_fields=["throttle_next_slot"])
    return [start + timedelta(seconds=index / rate) for index in range(count)]


def campaign_run_batch(*, campaign_id: int) -> int:
    """Send one batch of a running campaign; returns how many recipients it handled (0: nothing left).

    The batch's invitations are written in one transaction, in bulk (its claim
    too, when the campaign has neither a send window nor a rate), then
    their webhooks are sent side by side (at the throttle's pace when the
    campaign has a rate: a batch then holds at most a second of sends, so
    that pause and cancel take effect within a second)."""
    campaign = Campaign.objects.select_related("channel").filter(pk=campaign_id).first()
    if campaign is None or campaign.state != CampaignState.RUNNING:
        return 0
    Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=timezone.now())
    rate = campaign.rate_per_second
    size = min(BATCH_SIZE, rate) if rate else BATCH_SIZE
    down_since = campaign.channel.down_since
    if down_since is not None:  # the channel's circuit is open: recipients wait (pending), but for a probe
        if timezone.now() - down_since < CIRCUIT_PROBE_INTERVAL:
            return 0  # campaigns_tick kicks the campaign again once it has been quiet for a while
        size = 1
    now = timezone.now()
    if not campaign.send_window and not rate:
        handled, deliveries = _claim_and_invite_batch(campaign, now, size)
        if not handled:
            _complete_if_done(campaign_id)
            return 0
        _log_batch_written(campaign_id, handled)
        if deliveries:
            deliveries_send(claimed=deliveries)
        return handled if down_since is None else 0
    ids = _claim_batch(campaign_id, now, size, windowed=bool(campaign.send_window))
    if not ids:
        _complete_if_done(campaign_id)
        return 0
    claimed = len(ids)
    ids = send_window_hold(campaign=campaign, recipient_ids=ids, now=now)  # the others wait for their window
    # Those held back leave the batch: it claims again until it holds `size` recipients to send. Otherwise an
    # audience half outside its window would halve every batch, and the half that sends would pay each batch's
    # fixed costs twice (issue 27: the waiting half must not slow the other). Bounded: a batch stays short.
    for _ in range(WINDOW_REFILL_ROUNDS if campaign.send_window and down_since is None else 0):
        if len(ids) >= size:
            break
        more = _claim_batch(campaign_id, now, size - len(ids), windowed=True)
        if not more:
            break
        claimed += len(more)
        ids += send_window_hold(campaign=campaign, recipient_ids=more, now=now)
    if not ids:
        return claimed if down_since is None else 0
    # The send times are reserved before the invitations are written, so that
    # writing them does not open a gap in the campaign's rate.
    send_times = _reserve_send_times(campaign_id, len(ids), rate) if rate else None
    written, deliveries = _invite_batch(campaign, ids)
    _log_batch_written(campaign_id, written)
    if deliveries:
        deliveries_send(claimed=deliveries, send_times=send_times[: len(deliveries)] if rate else None)
    return claimed if down_since is None else 0  # after a probe the chain stops: the tick kicks it again


def _log_batch_written(campaign_id: int, recipients: int) -> None:
    """Once a batch's invitations (and refusals) are committed, before its messages are sent: which worker wrote
    which recipients, whatever becomes of the sends (their failures are the deliveries' to retry)."""
    logger.info("Campaign %s: a batch wrote the outcome of %d recipients", campaign_id, recipients)


INVITEE_FIELDS = ("pk", "client_id", "contact_fields", "custom_properties")


@transaction.atomic
def _claim_and_invite_batch(campaign: Campaign, now: datetime, size: int) -> tuple[int, list[Delivery]]:
    """A batch of a campaign without a send window or a rate: its recipients claimed and invited in one
    transaction, so no lease is written. The rows stay locked until the invitations commit (other batches skip
    them), and a worker lost on the way gives them back with its rollback. A lease costs each recipient a second
    update, which the full pages of an audience loaded by COPY make an entry in three of its indexes (docs/
    PERFORMANCE.md, "the claim in the invitation's transaction"). Returns the recipients handled and their
    deliveries."""
    recipients = _claim_in_row_order(campaign.pk, _unleased(now), size, INVITEE_FIELDS)
    return len(recipients), _invite_recipients(campaign, recipients)


@transaction.atomic
def _invite_batch(campaign: Campaign, recipient_ids: list[int]) -> tuple[int, list[Delivery]]:
    """InviteToChat for each claimed recipient still without a message, in
    one transaction; returns how many it wrote (not those another worker
    wrote once this one's lease ran out) and their deliveries, owned by this
    worker."""
    recipients = list(
        CampaignRecipient.objects.select_for_update()
        .filter(pk__in=recipient_ids, message__isnull=True, error="")  # a lease may have run out meanwhile
        .only(*INVITEE_FIELDS)
        .order_by("row_number")
    )
    return len(recipients), _invite_recipients(campaign, recipients)


def _invite_recipients(campaign: Campaign, recipients: list[CampaignRecipient]) -> list[Delivery]:
    """InviteToChat for each of `recipients`, locked by the caller's transaction; returns their deliveries,
    owned by this worker."""
    if not recipients:
        return []
    # Each recipient's variant (services/variants.py) decides the standard response it is sent: one
    # invitation plan a variant, the same variant for a recipient however often its batch runs.
    variants = campaign_variants(campaign_id=campaign.pk)
    shares = [variant.share for variant in variants]
    position = {recipient.pk: variant_for(campaign_id=campaign.pk, recipient_id=recipient.pk, shares=shares)
                if variants else None for recipient in recipients}
    responses = {variant.position: variant.standard_response_id for variant in variants}
    outcome_of = {}
    for variant in sorted(set(position.values()), key=lambda p: -1 if p is None else p):
        group = [recipient for recipient in recipients if position[recipient.pk] == variant]
        try:
            plan = invitation_plan(
                channel=campaign.channel,
                standard_response_id=campaign.standard_response_id if variant is None else responses[variant],
                chat_queue_key=campaign.chat_queue_key or None,
                terminate_session=campaign.terminate_sessions,
            )
            outcomes = invitations_create(
                plan=plan,
                invitees=[
                    Invitee(
                        client_id=recipient.client_id,
                        contact_fields=recipient.contact_fields,
                        custom_properties=recipient.custom_properties,
                        user_data={"GCTI_Chat_SubmitAsOutbound": "true", "CampaignId": str(campaign.pk),
                                   "PhoneNumber": recipient.client_id},
                    )
                    for recipient in group
                ],
                publish=False,
            )
        except ApplicationError as error:  # the channel is disabled, the response is gone...: no one is invited
            outcomes = [error] * len(group)
        outcome_of.update(zip((recipient.pk for recipient in group), outcomes, strict=True))
    deliveries, rows = [], []
    for recipient in recipients:
        outcome = outcome_of[recipient.pk]
        if isinstance(outcome, ApplicationError):
            rows.append({"pk": recipient.pk, "message": None, "error": outcome.message[:500],
                         "variant": position[recipient.pk]})
        else:
            rows.append({"pk": recipient.pk, "message": outcome.message_id, "error": "",
                         "variant": position[recipient.pk]})
            deliveries.append(outcome.delivery)
    if len({delivery.lease_token for delivery in deliveries}) > 1:
        # One lease a variant's invitations: deliveries_send sends those of one lease, so all take the first's.
        token = deliveries[0].lease_token
        Delivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries]).update(lease_token=token)
        for delivery in deliveries:
            delivery.lease_token = token
    now = timezone.now()
    bulk_update_rows(CampaignRecipient, rows, ["message", "error", "variant"],
                     constants={"claimed_until": None, "reached_at": now})
    report_recipients_reached(campaign_id=campaign.pk, reached=[(row["variant"], bool(row["error"]))
                                                                for row in rows], at=now)
    return deliveries


TO_INVITE, IN_FLIGHT, DONE = "to invite", "in flight", "done"


def _complete_if_done(campaign_id: int) -> str:
    """Complete a running campaign once every recipient has a final outcome (API.md "Campaign outcomes"):
    refused, or its message sent, delivered or failed after its last attempt. Returns where it stands:
    TO_INVITE (recipients without a message yet), IN_FLIGHT (messages still being delivered) or DONE."""
    recipients = CampaignRecipient.objects.filter(campaign_id=campaign_id)
    to_send = Q(message__isnull=True, error="")
    # One question an index: recipient_to_send, then recipient_waiting (those held back by the send window).
    if recipients.filter(to_send, next_window_at__isnull=True).exists() or \
            recipients.filter(to_send, next_window_at__isnull=False).exists():
        return TO_INVITE
    if recipients.filter(message__status=MessageStatus.QUEUED).exists():
        return IN_FLIGHT
    with transaction.atomic():
        completed = Campaign.objects.filter(pk=campaign_id, state=CampaignState.RUNNING).update(
            state=CampaignState.COMPLETED, finished_at=timezone.now()
        )
        if completed:
            name, tenant_id = Campaign.objects.filter(pk=campaign_id).values_list("name", "channel__tenant_id").get()
            _audit_system_state_change(campaign_id, name, tenant_id, CampaignState.RUNNING, CampaignState.COMPLETED)
    return DONE


def _audit_system_state_change(campaign_id: int, name: str, tenant_id: int, before: str, after: str) -> None:
    """A state change the server makes by itself with QuerySet.update, which no signal sees."""
    audit_record(action=AuditAction.STATE_CHANGE, object_type="campaign", object_id=campaign_id, object_repr=name,
                 changes={"state": [before, after]}, tenant_id=tenant_id, system=True)


def campaign_counts(*, campaign: Campaign) -> dict:
    """{"total", "refused", "pending", "sent", "delivered", "failed"}: recipients by outcome (refused: no
    message, see `error`; pending: a message not yet accepted, or none yet). The database keeps the counts
    in the statements that change them (CampaignCounter, migration 0019), so reading them costs the same at
    ten recipients and at ten million."""
    sums = CampaignCounter.objects.filter(campaign=campaign).aggregate(
        total=Sum("total"), refused=Sum("refused"), sent=Sum("sent"), delivered=Sum("delivered"),
        failed=Sum("failed"),
    )
    counts = {name: value or 0 for name, value in sums.items()}
    counts["pending"] = counts["total"] - counts["refused"] - counts["sent"] - counts["delivered"] - counts["failed"]
    return {name: counts[name] for name in ("total", "refused", "pending", "sent", "delivered", "failed")}


RESULT_COLUMNS = ["row", "client_id", "status", "message_id", "interaction_id", "reasons", "error"]


def campaign_results_csv(*, campaign: Campaign, out) -> None:
    """Write every recipient's result, streamed in chunks so memory does not grow with the audience."""
    writer = SafeCSVWriter(out)  # a client id or a reason from outside must not run as a formula
    writer.writerow(RESULT_COLUMNS)
    recipients = (
        CampaignRecipient.objects.filter(campaign=campaign).select_related("message").order_by("row_number")
    )
    for recipient in recipients.iterator(chunk_size=2000):
        message = recipient.message
        reasons = "; ".join(
            f"{r.get('code')} {r.get('message', '')}".strip() for r in (message.reasons if message else [])
        )
        writer.writerow([
            recipient.row_number, recipient.client_id, recipient.status, message.pk if message else "",
            message.interaction_id if message else "", reasons, recipient.error,
        ])


def campaign_refusals(*, campaign: Campaign, reasons: int = 10, rows: int = 20) -> dict:
    """The refused recipients (at upload, or when invited) for the campaign's page: how many for each reason,
    the most frequent first, and the first `rows` of them in row order. Repeats of an earlier row count as
    one reason whichever row they repeat."""
    from django.db.models import Case, CharField, F, Value, When

    refused = CampaignRecipient.objects.filter(campaign=campaign).exclude(error="")
    reason = Case(When(error__startswith=DUPLICATE_REASON_START, then=Value(_duplicate_reason(None))),
                  default=F("error"), output_field=CharField())
    by_reason = refused.annotate(reason=reason).values("reason").annotate(n=Count("pk")).order_by("-n", "reason")
    counted = [(row["reason"], row["n"]) for row in by_reason[:reasons]]
    total = campaign_counts(campaign=campaign)["refused"]
    return {
        "total": total,
        "by_reason": counted,
        "other": total - sum(n for _, n in counted),  # refused for the less frequent reasons
        "rows": list(refused.order_by("row_number").values("row_number", "client_id", "error")[:rows]),
    }


def campaign_timeline(*, campaign: Campaign) -> dict:
    """Sends and deliveries per second of a campaign, for the admin's chart."""
    from django.db.models.functions import TruncSecond

    from channels_app.models import Message

    messages = Message.objects.filter(campaign_recipient__campaign=campaign)

    def per_second(field_name: str) -> list:
        rows = (
            messages.filter(**{f"{field_name}__isnull": False})
            .annotate(second=TruncSecond(field_name))
            .values("second")
            .annotate(n=Count("pk"))
            .order_by("second")
        )
        return [[row["second"].isoformat(), row["n"]] for row in rows]

    return {"sent": per_second("sent_at"), "delivered": per_second("delivered_at")}


REJECTED_ROWS_KEPT = 500


def campaign_keep_upload_report(*, campaign: Campaign, report: AudienceReport, file_name: str = "") -> dict:
    """Keep the report of an audience upload on the campaign (the admin shows
    the last one on the campaign's page): at most REJECTED_ROWS_KEPT refused
    and as many repeated rows, with how many there were."""
    kept = {
        **report.as_dict(),
        "rows_read": report.accepted + report.rejected_total + report.duplicates_total,
        "rejected": report.rejected[:REJECTED_ROWS_KEPT],
        "rejected_total": max(report.rejected_total, len(report.rejected)),
        "duplicates": report.duplicates[:REJECTED_ROWS_KEPT],
        "duplicate_rows": report.duplicate_rows[:REJECTED_ROWS_KEPT],
        "duplicates_total": max(report.duplicates_total, len(report.duplicates)),
        "file": file_name,
        "at": timezone.now().isoformat(),
    }
    Campaign.objects.filter(pk=campaign.pk).update(upload_report=kept)
    campaign.upload_report = kept
    return kept
