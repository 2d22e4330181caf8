"""`assistants-compat keys create --project NAME_OR_ID [--name NAME]`: a project's first key,
for operators without an admin client.

The project is found by ID, else by name, and made with that name when there is none. The key
is printed once, on stdout alone (so `KEY=$(assistants-compat keys create …)` works), and
stored only as its hash: it cannot be shown again. The store is opened shared, not claimed,
so this works beside a running server, which accepts the key within `RECHECK_SECONDS`.
"""

from __future__ import annotations

import argparse
import sys

from compat_core import tenancy
from compat_core.config import Settings
from compat_core.keyring import KeyRing, project_named
from compat_core.startup import database_errors
from compat_core.store import create_store


def parser() -> argparse.ArgumentParser:
    keys = argparse.ArgumentParser(
        prog="assistants-compat keys", description="API keys of projects"
    )
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key (and its project if missing)")
    create.add_argument("--project", required=True, help="the project's ID or name")
    create.add_argument("--name", default="", help="a name for the key")
    return keys


async def run(settings: Settings, args: argparse.Namespace) -> None:
    with database_errors(settings.database_url):
        store = create_store(settings.database_url)
        await store.open()
    try:
        project = await project_named(store, args.project, create=True)
        assert project is not None
        if project.archived_at is not None:
            print(f"assistants-compat: project {project.id} is archived", file=sys.stderr)
            sys.exit(1)
        record, key = await KeyRing(store, ()).create(project.id, args.name or "cli")
    finally:
        await store.close()
    print(
        f"created key {record.id} ({record.redacted_value}) for project {project.id} "
        f"({project.name}); it is shown once:",
        file=sys.stderr,
    )
    print(key)
    if project.id == tenancy.DEFAULT_PROJECT:
        print("(the default project, which COMPAT_API_KEYS keys open too)", file=sys.stderr)
