#!/usr/bin/env python3
"""The peer beside caltrail's append in bench/run: Python's `eventsourcing` library recording the
same JSON Lines estate in SQLite, one aggregate per license server (events that name none go to
one estate aggregate), saved in batches of 10,000 events. Prints `eventsourcing <events> <seconds>`
like caltrail-bench, the seconds counting from the first line read to the last batch saved.

Usage: peer_eventsourcing.py EVENTS.jsonl DB
"""

import json
import os
import sys
import time
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

BATCH = 10_000


class LicenseServer(Aggregate):
    """A license server's history: every event that names it, as recorded."""

    @staticmethod
    def create_id(name):
        return uuid5(NAMESPACE_URL, f"caltrail:{name}")

    @event("Created")
    def __init__(self, name):
        self.name = name
        self.n_events = 0

    @event("Recorded")
    def record(self, line):
        self.n_events += 1


def server_of(parsed):
    data = parsed.get("data", {})
    return data.get("server") or data.get("source") or "(estate)"


def main():
    events_path, db = sys.argv[1], sys.argv[2]
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db,
                           "AGGREGATE_CACHE_MAXSIZE": "10000"})
    servers = {}
    pending = {}
    n = 0
    started = time.perf_counter()
    with open(events_path) as lines:
        for line in lines:
            if not line.strip():
                continue
            parsed = json.loads(line)
            name = server_of(parsed)
            aggregate = servers.get(name)
            if aggregate is None:
                aggregate = LicenseServer(name)
                servers[name] = aggregate
            aggregate.record(line)
            pending[name] = aggregate
            n += 1
            if n % BATCH == 0:
                app.save(*pending.values())
                pending.clear()
    if pending:
        app.save(*pending.values())
    print(f"eventsourcing {n} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
