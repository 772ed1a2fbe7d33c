"""Query parameters of API lists: filters and pages, refused when they cannot be understood.

django-filter skips a filter whose value is empty or not understood
(`?enabled=maybe`, `?created_before=`) and DRF takes `?page=` for the first
page: the client gets everything, as if it had asked for it. Here such a
value is a 400 naming the parameter (404 "Invalid page." for pages, as DRF
answers other wrong page numbers), as is an integer no column holds (past 64
bits). Times are compared in UTC.
"""

from datetime import UTC, datetime

from django import forms
from django_filters import rest_framework as filters
from rest_framework import pagination
from rest_framework.exceptions import NotFound

# The integers a database column holds (a 64-bit signed BIGINT, as every id here).
INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1


def integer_in_range(text: str) -> bool:
    """Whether a text of digits is an integer a database column can hold."""
    return INTEGER_MIN <= int(text) <= INTEGER_MAX


class StrictFilterSet(filters.FilterSet):
    def is_valid(self):
        super().is_valid()
        for name, filter_ in self.filters.items():
            if isinstance(filter_, filters.CharFilter) or name not in self.data:
                continue  # an empty text is a text
            value = self.form.cleaned_data.get(name)
            if name in self.form.cleaned_data and value in (None, ""):
                self.form.add_error(name, f"{self.data[name]!r} is not a valid value.")
            elif isinstance(value, int) and not isinstance(value, bool) and not INTEGER_MIN <= value <= INTEGER_MAX:
                # Past 64 bits SQLite takes no integer (OverflowError: a 500); no id is that large anyway.
                self.form.add_error(name, f"{self.data[name]!r} is out of range.")
            elif isinstance(value, datetime) and value.tzinfo is not None:
                # In UTC: PostgreSQL takes no offset beyond 15:59 (Python up to 23:59); that was a 500.
                try:
                    self.form.cleaned_data[name] = value.astimezone(UTC)
                except OverflowError:
                    self.form.add_error(name, f"{self.data[name]!r} is out of range.")
        return not self.form.errors


class StrictFilterBackend(filters.DjangoFilterBackend):
    filterset_base = StrictFilterSet  # for views that list `filterset_fields`

    def filter_queryset(self, request, queryset, view):
        # Filters choose among a list's rows. A detail route (`GET /api/interactions/{id}/`, its actions) names its
        # row: building and checking the list's FilterSet there cost opening a conversation in the workspace
        # (issue 24, "Speed") about a millisecond a request, for nothing.
        if getattr(view, "detail", False):
            return queryset
        return super().filter_queryset(request, queryset, view)


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField


class PageNumberPagination(pagination.PageNumberPagination):
    def get_page_number(self, request, paginator):
        if request.query_params.get(self.page_query_param) == "":
            raise NotFound(self.invalid_page_message.format(page_number="", message="That page number is empty."))
        return super().get_page_number(request, paginator)
