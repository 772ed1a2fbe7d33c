"""The order of the URL lists (project/urls.py, channels_app/api/urls.py): the hot doors come first (issue 25),
and that order answers every URL as the former one did. Resolution takes the first pattern that matches, so
moving a pattern ahead of others changes nothing where no URL is matched both by it and by one of them: checked
here on every named URL, reversed with sample arguments, and on the hot doors' own odd URLs."""

import itertools

import pytest
from django.urls import NoReverseMatch, URLResolver, get_resolver, resolve, reverse

HOT_DOORS = {"esp", "nexus-messages", "interaction-messages"}
SAMPLE_ARGUMENTS = ["7", "abc", "A1b2", "json", "x/y"]
HOT_DOOR_PATHS = [
    "esp", "esp/", "nexus/v3/channels/abc/messages", "nexus/v3/channels/abc/messages/",
    "nexus/v3/channels/a.b/messages", "api/interactions/abc/messages/", "api/interactions/abc/messages",
    "api/interactions/abc/messages.json", "api/interactions/abc/messages.json/", "api/interactions/a.b/messages/",
    "api/interactions/abc/messages/x", "api/interactions//messages/",
]


def _chains(patterns, chain=()):
    """Every endpoint pattern, with the includes that lead to it."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _chains(pattern.url_patterns, (*chain, pattern))
        else:
            yield (*chain, pattern)


def _namespace(chain) -> str:
    return "".join(f"{pattern.namespace}:" for pattern in chain[:-1]
                   if isinstance(pattern, URLResolver) and pattern.namespace)


def _parameters(chain) -> list[str]:
    names = set()
    for pattern in chain:
        converters = getattr(pattern.pattern, "converters", None)
        names.update(converters if converters is not None else pattern.pattern.regex.groupindex)
    return sorted(names)


def sample_paths() -> list[str]:
    """Every named URL, reversed with each combination of sample arguments that fits, and each with and without
    a trailing slash (without the leading one, as the resolver's patterns read them)."""
    paths = set(HOT_DOOR_PATHS)
    for chain in _chains(get_resolver().url_patterns):
        if not chain[-1].name:
            continue
        name, parameters = _namespace(chain) + chain[-1].name, _parameters(chain)
        for values in itertools.product(SAMPLE_ARGUMENTS, repeat=len(parameters)):
            try:
                path = reverse(name, kwargs=dict(zip(parameters, values, strict=True)))[1:]
            except NoReverseMatch:
                continue
            paths.update({path, path.rstrip("/"), path + "/"})
    return sorted(paths)


def matching_endpoints(patterns, path: str) -> list:
    """The endpoint patterns that match `path` whole, in any order (what resolution would try, every one)."""
    found = []
    for pattern in patterns:
        match = pattern.pattern.match(path)
        if match is None:
            continue
        if isinstance(pattern, URLResolver):
            found += matching_endpoints(pattern.url_patterns, match[0])
        else:
            found.append(pattern)
    return found


@pytest.fixture(scope="module")
def paths():
    return sample_paths()


def test_the_hot_doors_come_first():
    top = get_resolver().url_patterns
    api = top[4]

    assert [str(pattern.pattern) for pattern in top[:5]] == [
        "esp", "nexus/v3/channels/<str:channel_id>/messages", "api/schema/", "api/docs/", "api/"]
    assert [pattern.name for pattern in api.url_patterns[:2]] == ["interaction-messages", "interaction-messages"]
    assert resolve("/api/interactions/abc/messages/").url_name == "interaction-messages"


def test_no_url_is_matched_under_two_entries_of_the_top_list(paths):
    top = get_resolver().url_patterns
    shared = {path: entries for path in paths
              if len(entries := [str(entry.pattern) for entry in top if matching_endpoints([entry], path)]) > 1}

    assert len(paths) > 1000
    assert shared == {}


def test_a_url_of_a_hot_door_is_matched_by_that_door_alone(paths):
    shared = {}
    for path in paths:
        endpoints = matching_endpoints(get_resolver().url_patterns, path)
        if any(endpoint.name in HOT_DOORS for endpoint in endpoints) and len(endpoints) > 1:
            shared[path] = [str(endpoint.pattern) for endpoint in endpoints]

    assert shared == {}
