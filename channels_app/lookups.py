"""Lookups the ORM lacks.

`AnyOf(F("pk"), ids)` is `pk__in=ids` with the list sent as one array parameter on PostgreSQL
(`= ANY(%s::<type>[])`) instead of one placeholder per value: for the purge's lists of 10,000 ids,
building, quoting and parsing 10,000 placeholders cost more than the statements themselves. Other
databases (SQLite) get the plain `IN (...)`.
"""

from django.db.models import Lookup


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False  # a list of values, sent as it is

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            return "1 = 0", []
        if connection.vendor == "postgresql":
            # Cast to the column's own type: an array of another type (numeric for ints) would not use its index.
            array_type = self.lhs.output_field.db_type(connection).split("(")[0]
            return f"{lhs} = ANY(%s::{array_type}[])", [*lhs_params, values]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
