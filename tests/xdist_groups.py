"""Keep tests that share an expensive fixture on one pytest-xdist worker (`make test`).

`make test` runs two pytest workers (``-n 2 --dist loadgroup``). A module-scoped fixture
(a graded class, the classroom, a loaded model) is built once per worker that runs a test
needing it, so such tests must stay together: each exercise's graded class is one group
(the five classes spread over the workers), and every other module with a module-scoped
fixture is one group. Other tests go wherever a worker is free.

pytest-xdist's own ``xdist_group`` mark does not work with pytest 9 (xdist 3.8 writes the
group into ``item._nodeid``, which pytest 9 no longer reads), so this plugin puts the group
into the node id itself, the way xdist's scheduler reads it (``<node id>@<group>``).
tests/test_xdist_groups.py checks that a group really stays on one worker.
"""
from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId


def group_of(item: pytest.Item) -> str | None:
    """The group of a test, or None if it can run on any worker."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "graded" in callspec.params:
        return f"graded-{callspec.params['graded']}"
    if any(defs[-1].scope == "module" for defs in item._fixtureinfo.name2fixturedefs.values()):
        return item.module.__name__
    return None


def slow_singles_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """Tests marked slow that belong to no group first, the rest after, each in their order.

    xdist hands out groups with more tests first, then single tests in collection order, so a
    lecture notebook collected late could start when the other worker has nothing left, and
    the run would wait minutes for it alone. Long work first, short work to fill the end.
    """
    def rank(item):
        return 0 if group_of(item) is None and item.get_closest_marker("slow") else 1
    return sorted(items, key=rank)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # True only in workers of --dist loadgroup
        return
    items[:] = slow_singles_first(items)
    for item in items:
        group = group_of(item)
        if group and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{group}")
