"""Query parameters of API lists: filters and pages, refused when they cannot be understood.

django-filter skips a filter whose value is empty or not understood
(`?enabled=maybe`, `?created_before=`) and DRF takes `?page=` for the first
page: the client gets everything, as if it had asked for it. Here such a
value is a 400 naming the parameter (404 "Invalid page." for pages, as DRF
answers other wrong page numbers).
"""

from django import forms
from django_filters import rest_framework as filters
from rest_framework import pagination
from rest_framework.exceptions import NotFound


class StrictFilterSet(filters.FilterSet):
    def is_valid(self):
        super().is_valid()
        for name, filter_ in self.filters.items():
            if isinstance(filter_, filters.CharFilter) or name not in self.data:
                continue  # an empty text is a text
            if name in self.form.cleaned_data and self.form.cleaned_data[name] in (None, ""):
                self.form.add_error(name, f"{self.data[name]!r} is not a valid value.")
        return not self.form.errors


class StrictFilterBackend(filters.DjangoFilterBackend):
    filterset_base = StrictFilterSet  # for views that list `filterset_fields`


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField


class PageNumberPagination(pagination.PageNumberPagination):
    def get_page_number(self, request, paginator):
        if request.query_params.get(self.page_query_param) == "":
            raise NotFound(self.invalid_page_message.format(page_number="", message="That page number is empty."))
        return super().get_page_number(request, paginator)
