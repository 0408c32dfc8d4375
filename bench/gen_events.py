#!/usr/bin/env python3
"""Writes a deterministic history of N events (JSON Lines) for measuring caltrail.

A few agreements, license servers and key packs, then per-device CALs issued and renewed every
52 to 89 days, with some per-user CALs and revocations. Same seed, same bytes.

    python3 bench/gen_events.py 100000 > /tmp/100k.jsonl
"""
import datetime
import heapq
import json
import random
import sys


def main():
    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
    out = sys.stdout
    start = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
    written = 0

    def emit(event_type, at, data):
        nonlocal written
        written += 1
        line = {"id": f"g-{written:09d}", "type": event_type,
                "at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": data}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")

    servers = [f"ls{i:02d}.estate.example" for i in range(1, 9)]
    for version in ("2019", "2022"):
        for cal_type in ("per_device", "per_user"):
            emit("agreement.purchased", start, {
                "agreement": "EA-1000001", "program": "enterprise_agreement",
                "product_version": version, "cal_type": cal_type, "quantity": 1_000_000,
                "anniversary": "01-01"})
    packs = []
    for i, server in enumerate(servers):
        lsid = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(35))
        emit("server.activated", start, {"server": server, "license_server_id": lsid,
                                         "os_version": "2022", "method": "automatic"})
        for j, (version, cal_type) in enumerate((("2022", "per_device"), ("2022", "per_user"))):
            keypack = f"{server.split('.')[0]}/{j + 2}"
            emit("keypack.installed", start, {
                "server": server, "keypack": keypack, "agreement": "EA-1000001",
                "product_version": version, "cal_type": cal_type, "quantity": 100_000,
                "wmi_keypack_id": j + 2})
            packs.append((server, keypack, cal_type))
    device_packs = [p for p in packs if p[2] == "per_device"]
    user_packs = [p for p in packs if p[2] == "per_user"]
    n_devices = max(1, (n_events - written) // 12)
    # Each device gets a CAL on its first day, then renewals 52 to 89 days apart.
    heap = [(start + datetime.timedelta(minutes=rng.randrange(0, 60 * 24 * 30)), d)
            for d in range(n_devices)]
    heapq.heapify(heap)
    while written < n_events:
        at, device = heapq.heappop(heap)
        server, keypack, _ = device_packs[device % len(device_packs)]
        roll = rng.random()
        if roll < 0.02:
            emit("cal.revoked", at, {"server": server, "keypack": keypack,
                                     "holder": f"PC-{device:07d}"})
        elif roll < 0.15:
            userver, ukeypack, _ = user_packs[device % len(user_packs)]
            emit("cal.issued", at, {"server": userver, "keypack": ukeypack,
                                    "holder": f"ESTATE\\user{device:07d}",
                                    "session_host": "rdsh01.estate.example",
                                    "session_host_version": "2022"})
        else:
            lifetime = datetime.timedelta(days=rng.randrange(52, 90))
            emit("cal.issued", at, {"server": server, "keypack": keypack,
                                    "holder": f"PC-{device:07d}",
                                    "hardware_id": f"{device:08x}",
                                    "expires_at": (at + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "session_host": "rdsh01.estate.example",
                                    "session_host_version": "2022"})
        heapq.heappush(heap, (at + datetime.timedelta(days=rng.randrange(52, 90)), device))


if __name__ == "__main__":
    main()
