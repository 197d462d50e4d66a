"""Reads a flexibleServers GET answer at api-version 2022-12-01 on stdin, deserializes it with
az 2.45's SDK (the Server model of azure.mgmt.rdbms.postgresql_flexibleservers) and prints, as
JSON, every attribute az 2.45's postgres commands read from a server (flexible_server_custom_postgres.py,
validators.py, _flexible_server_util.py), each as [python type name, value], plus what az's own
get_identity_and_data_encryption and pg_byok_validator make of it."""
import inspect
import json
import sys

from azure.mgmt.rdbms.postgresql_flexibleservers import models
from azure.mgmt.rdbms.postgresql_flexibleservers._serialization import Deserializer
from azure.cli.command_modules.rdbms import validators
from azure.cli.command_modules.rdbms._flexible_server_util import get_identity_and_data_encryption

deserialize = Deserializer({k: v for k, v in inspect.getmembers(models) if isinstance(v, type)})
server = deserialize("Server", json.load(sys.stdin))

PATHS = [
    "id", "name", "location", "version", "administrator_login", "fully_qualified_domain_name", "state",
    "availability_zone", "replication_role", "sku.name", "sku.tier", "storage.storage_size_gb",
    "backup.backup_retention_days", "backup.geo_redundant_backup", "high_availability.mode",
    "network.public_network_access", "maintenance_window.custom_window", "maintenance_window.day_of_week",
    "maintenance_window.start_hour", "maintenance_window.start_minute", "auth_config.password_auth",
    "data_encryption.type", "data_encryption.primary_key_uri", "data_encryption.primary_user_assigned_identity_id",
    "identity.type",
]


def get(obj, path):
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part)
    return obj


out = {}
for p in PATHS:
    v = get(server, p)
    out[p] = [type(v).__name__, v if isinstance(v, (str, int, bool, type(None))) else str(v)]
uai = server.identity.user_assigned_identities if server.identity else None
out["identity.user_assigned_identities"] = {k: [v.principal_id, v.client_id] for k, v in (uai or {}).items()}
out["replication_role.lower"] = server.replication_role.lower()
identity, data_encryption = get_identity_and_data_encryption(server)
out["get_identity_and_data_encryption"] = [identity is not None, data_encryption is not None]
try:
    # `az postgres flexible-server update --identity ... --key ...`, as pg_arguments_validator calls it.
    validators.pg_byok_validator("identity", "https://key", server.backup.geo_redundant_backup, server)
    out["byok_update_with_key"] = "ok"
except Exception as e:
    out["byok_update_with_key"] = str(e)
print(json.dumps(out))
