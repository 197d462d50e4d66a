"""Reads a .../capabilities?api-version=2022-12-01 answer on stdin and runs what az 2.45 runs on
it before `az postgres flexible-server create/update`: the SDK's deserializer (the model
CapabilitiesListResult of azure.mgmt.rdbms.postgresql_flexibleservers), the CLI's own parser
_postgres_parse_list_skus, and the validators pg_arguments_validator calls with the values in
argv: tier sku storage_gb version geo_redundant_backup high_availability. Prints, as JSON, what
the parser found and each validator's outcome ("ok" or the error az would print)."""
import inspect
import json
import sys

from azure.mgmt.rdbms.postgresql_flexibleservers import models
from azure.mgmt.rdbms.postgresql_flexibleservers._serialization import Deserializer
from azure.cli.command_modules.rdbms import validators
from azure.cli.command_modules.rdbms._flexible_server_util import _postgres_parse_list_skus

tier, sku, storage_gb, version, geo, ha = sys.argv[1:7]
body = json.load(sys.stdin)
deserialize = Deserializer({k: v for k, v in inspect.getmembers(models) if isinstance(v, type)})
result = deserialize("CapabilitiesListResult", body)
info = _postgres_parse_list_skus(result.value)


def outcome(fn, *args):
    try:
        fn(*args)
        return "ok"
    except Exception as e:  # az prints the message of whatever the validator raises
        return str(e)


sku_info = info["sku_info"]
print(json.dumps({
    "single_az": info["single_az"],
    "geo_backup_supported": info["geo_backup_supported"],
    "tiers": {t: {k: sorted(v) for k, v in d.items()} for t, d in sku_info.items()},
    "validators": {
        "tier": outcome(validators._pg_tier_validator, tier, sku_info),
        "sku": outcome(validators._pg_sku_name_validator, sku, sku_info, tier, None),
        "storage": outcome(validators._pg_storage_validator, int(storage_gb), sku_info, tier, None),
        "version": outcome(validators._pg_version_validator, version, sku_info, tier, None),
        "geo": outcome(validators._pg_georedundant_backup_validator, geo, info["geo_backup_supported"]),
        "ha": outcome(validators._pg_high_availability_validator, ha, None, None, tier, info["single_az"], None),
    },
}))
