"""Ids that grow with time: a fixed-width time prefix, then random characters.

A random primary key sends each new row to a random leaf of its index: once the index outgrows the buffer
cache, every insert reads a leaf from disk and dirties it, and after each checkpoint writes a full page image of
it to the WAL (docs/PERFORMANCE.md, "the history and memory rows": 2-4 leaf pages read per message at 2.4M
messages). With the time first, new rows go to the right edge of the index, whose few pages stay in the cache,
and the B-tree splits its rightmost page 90/10 instead of halving pages in the middle.

The alphabet is in the order of its bytes (digits, capitals, small letters), the order in which PostgreSQL's
C and C.UTF-8 collations and SQLite's BINARY compare text, so the ids sort by time in the database as in Python.
Under a linguistic collation (en_US) they would still cluster by time, only not strictly at the right edge.

Order is for the indexes only: nothing may rely on it for correctness (two ids of one millisecond are in random
order, and clocks of two machines differ).
"""

import secrets
import string
import time

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
BASE = len(ALPHABET)
# Milliseconds since 1970 in 7 characters: 62**7 ms reach the year 2081, after which the prefix starts again
# from zero (ids stay unique by their random part; only their order by time is lost for a while).
TIME_CHARACTERS = 7
_TIME_SPAN = BASE**TIME_CHARACTERS
BITS_PER_CHARACTER = 5.954  # log2(62)


def _encoded(number: int, width: int) -> str:
    """`number` (< 62**width) in `width` characters, the most significant first."""
    characters = []
    for _ in range(width):
        number, index = divmod(number, BASE)
        characters.append(ALPHABET[index])
    return "".join(reversed(characters))


def time_prefix(milliseconds: int) -> str:
    """The first TIME_CHARACTERS characters of an id made at `milliseconds` since 1970."""
    return _encoded(milliseconds % _TIME_SPAN, TIME_CHARACTERS)


def random_characters(count: int) -> str:
    """`count` characters of the alphabet, uniformly random (secrets: an id cannot be guessed from others)."""
    return _encoded(secrets.randbelow(BASE**count), count)


def time_ordered_id(length: int) -> str:
    """An id of `length` characters: the current millisecond (TIME_CHARACTERS), then `length` - 7 random
    characters (5.95 bits each: 53.6 bits for a 16-character id, 77.4 for a 20-character one)."""
    return time_prefix(time.time_ns() // 1_000_000) + random_characters(length - TIME_CHARACTERS)
