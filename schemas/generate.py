#!/usr/bin/env python3
"""Writes the JSON Schemas of the event contract (../../shared/EVENTS.md) into this folder.

The schemas are committed; this script only keeps the shared value types identical across the
files. The test `schemas` of the integration suite proves that they agree with the Rust types:
run it after any change here or to the event model.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).parent
BASE = "https://caltrail.invalid/schemas/"

VERSIONS = ["2008", "2008R2", "2012", "2016", "2019", "2022", "2025"]
# RFC 3339 with an offset, at most microseconds; the validator also checks the date exists.
TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$",
}
NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"}
SERVER = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"}
TEXT = {"type": "string", "minLength": 1}
QUANTITY = {"type": "integer", "minimum": 1, "maximum": 1000000}
BOOL = {"type": "boolean"}
EVENT_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"}
LICENSE_SERVER_ID = {
    "type": "string",
    "pattern": r"^([A-Za-z0-9]{35}|[A-Za-z0-9]{5}(-[A-Za-z0-9]{5}){6})$",
}
METHOD = {"enum": ["automatic", "web_browser", "telephone"]}
VERSION = {"enum": VERSIONS}
CAL_TYPE = {"enum": ["per_user", "per_device"]}
# A date, or an RFC 3339 time as TIMESTAMP.
DATE_OR_TIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2}))?$",
}
ANNIVERSARY = {
    "type": "string",
    "pattern": r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    "not": {"enum": ["02-30", "02-31", "04-31", "06-31", "09-31", "11-31"]},
}

TYPES = {
    "agreement.purchased": (
        "An entitlement: what was bought under an agreement.",
        {
            "agreement": NAME,
            "program": {"enum": ["retail", "open_license", "select", "enterprise_agreement",
                                 "campus_agreement", "school_agreement", "spla", "other_agreement"]},
            "number": TEXT,
            "product_version": VERSION,
            "cal_type": CAL_TYPE,
            "quantity": QUANTITY,
            "anniversary": ANNIVERSARY,
            "software_assurance_until": DATE_OR_TIME,
            "rights_through": VERSION,
        },
        ["agreement", "program", "product_version", "cal_type", "quantity"],
    ),
    "server.activated": (
        "A license server was activated with the Microsoft Clearinghouse. For a decommissioned name it begins a new incarnation; opening marks an opening balance recorded on the first day.",
        {"server": SERVER, "license_server_id": LICENSE_SERVER_ID, "os_version": VERSION, "method": METHOD,
         "opening": BOOL},
        ["server", "license_server_id", "os_version", "method"],
    ),
    "server.reactivated": (
        "A license server was reactivated and got a new License Server ID.",
        {
            "server": SERVER,
            "license_server_id": LICENSE_SERVER_ID,
            "reason": {"enum": ["certificate_expired", "certificate_corrupt", "key_compromised",
                                "redeployed", "upgraded"]},
            "method": METHOD,
            "os_version": VERSION,
        },
        ["server", "license_server_id", "reason", "method"],
    ),
    "server.deactivated": (
        "A license server was deactivated.",
        {"server": SERVER, "method": METHOD},
        ["server", "method"],
    ),
    "keypack.installed": (
        "A CAL key pack was installed on a license server. downgraded_from must be newer than product_version.",
        {
            "server": SERVER,
            "keypack": NAME,
            "agreement": NAME,
            "product_version": VERSION,
            "cal_type": CAL_TYPE,
            "quantity": QUANTITY,
            "downgraded_from": {"enum": VERSIONS[1:]},
            "wmi_keypack_id": {"type": "integer", "minimum": 0, "maximum": 4294967295},
        },
        ["server", "keypack", "agreement", "product_version", "cal_type", "quantity"],
    ),
    "keypack.removed": (
        "CALs were taken out of an installed pack; all that remain when quantity is absent.",
        {"server": SERVER, "keypack": NAME, "quantity": QUANTITY},
        ["server", "keypack"],
    ),
    "cals.migrated": (
        "The migration wizard moved CALs from a source license server to a target one. from_keypack and keypack differ; source may equal target (a replacement given the old name). agreement, product_version and cal_type describe CALs from a source the ledger never knew.",
        {
            "source": SERVER,
            "target": SERVER,
            "reason": {"enum": ["source_replaced", "source_not_functioning"]},
            "source_reachable": BOOL,
            "from_keypack": NAME,
            "keypack": NAME,
            "quantity": QUANTITY,
            "source_removed": BOOL,
            "agreement": NAME,
            "product_version": VERSION,
            "cal_type": CAL_TYPE,
            "source_license_server_id": LICENSE_SERVER_ID,
        },
        ["source", "target", "reason", "source_reachable", "from_keypack", "keypack", "quantity", "source_removed"],
    ),
    "source.cals_removed": (
        "The CALs of a migration were removed from the source by hand after the wizard.",
        {
            "server": SERVER,
            "keypack": NAME,
            "quantity": QUANTITY,
            "migration": EVENT_ID,
            "method": {"enum": ["wmi", "deactivated", "role_removed"]},
        },
        ["server", "keypack", "quantity", "method"],
    ),
    "cal.issued": (
        "A CAL was issued to a device or a user; again to the same holder from the same pack is a renewal.",
        {
            "server": SERVER,
            "keypack": NAME,
            "holder": NAME,
            "hardware_id": TEXT,
            "temporary": BOOL,
            "expires_at": TIMESTAMP,
            "session_host": TEXT,
            "session_host_version": VERSION,
        },
        ["server", "keypack", "holder"],
    ),
    "cal.revoked": (
        "A per-device CAL was revoked.",
        {"server": SERVER, "keypack": NAME, "holder": NAME},
        ["server", "keypack", "holder"],
    ),
    "server.restored": (
        "The server's system state and licensing database were restored from a backup. backup_taken_at is not later than at.",
        {"server": SERVER, "backup_taken_at": TIMESTAMP, "same_machine": BOOL, "os_replaced": BOOL},
        ["server", "backup_taken_at", "same_machine", "os_replaced"],
    ),
    "server.database_rebuilt": (
        "The licensing database was rebuilt: every pack on the server is gone.",
        {"server": SERVER},
        ["server"],
    ),
    "server.decommissioned": (
        "The license server is gone: every pack on it, every CAL it issued, and what its migrations left on it.",
        {"server": SERVER, "reason": {"enum": ["role_removed", "machine_retired", "machine_lost"]}},
        ["server", "reason"],
    ),
    "event.retracted": (
        "A correction: the named earlier event was recorded in error. It must name an event that is not a retraction and not already retracted.",
        {"retracts": EVENT_ID, "reason": {"type": "string", "minLength": 1, "maxLength": 500}},
        ["retracts", "reason"],
    ),
}


def nullable(schema):
    """Optional fields may be null, which means absent."""
    return {"anyOf": [schema, {"type": "null"}]}


def envelope(type_schema, data_schema, title, description):
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": BASE + title + ".schema.json",
        "title": title,
        "description": description,
        "type": "object",
        "properties": {
            "id": EVENT_ID,
            "type": type_schema,
            "at": TIMESTAMP,
            "actor": nullable({"type": "string"}),
            "note": nullable({"type": "string"}),
            "data": data_schema,
        },
        "required": ["id", "type", "at", "data"],
        "additionalProperties": False,
    }


def main():
    for name, (description, fields, required) in TYPES.items():
        data = {
            "type": "object",
            "properties": {k: (v if k in required else nullable(v)) for k, v in fields.items()},
            "required": required,
            "additionalProperties": False,
        }
        schema = envelope({"const": name}, data, name, description)
        (HERE / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    schema = envelope({"enum": list(TYPES)}, {"type": "object"}, "envelope",
                      "The envelope every event line has; data is checked by the schema of its type.")
    (HERE / "envelope.schema.json").write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
