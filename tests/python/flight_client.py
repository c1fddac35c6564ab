"""Flight SQL client checks for tests/flight.rs, with PyPI pyarrow and
adbc-driver-flightsql against a running `finopsia run`.

Usage: flight_client.py CASES.json OUT.json

CASES.json: {"uri", "token", "revoked", "queries": [{"name", "sql",
"params" (optional list), "csv" (path of `finopsia query --format csv` of
the same query with the parameters written in)}], "refused": [sql, ...],
"stream": optional {"sql", "rows"}}. Writes OUT.json with what was found;
the Rust test asserts on it, and this script also asserts what it can
check on its own (any failure exits non-zero with the reason).
"""

import json
import sys
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as dbapi
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as fl


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    """A length-delimited protobuf field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def statement_query(sql):
    """google.protobuf.Any(CommandStatementQuery{query = sql})."""
    cmd = field(1, sql.encode())
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, url) + field(2, cmd)


def flight_table(uri, token, sql):
    client = fl.FlightClient(uri)
    header = client.authenticate_basic_token("finopsia", token)
    options = fl.FlightCallOptions(headers=[header])
    info = client.get_flight_info(fl.FlightDescriptor.for_command(statement_query(sql)), options)
    tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    return info.schema, pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def adbc_connect(uri, token):
    kwargs = {}
    if token is not None:
        kwargs[adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {token}"
    return dbapi.connect(uri, db_kwargs=kwargs)


def read_csv(path, schema):
    # pyarrow's CSV reader has no string_view: read text, then cast.
    def readable(t):
        return pa.string() if t == pa.string_view() else t
    types = {f.name: readable(f.type) for f in schema}
    opts = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                quoted_strings_can_be_null=False)
    t = pacsv.read_csv(path, convert_options=opts)
    return t.select(schema.names).cast(schema)


def main():
    cases = json.load(open(sys.argv[1]))
    uri, token = cases["uri"], cases["token"]
    out = {"queries": {}, "refused": {}, "auth": {}}
    conn = adbc_connect(uri, token)
    for q in cases["queries"]:
        cur = conn.cursor()
        if q.get("params") is not None:
            cur.execute(q["sql"], parameters=tuple(q["params"]))
        else:
            cur.execute(q["sql"])
        a = cur.fetch_arrow_table()
        cur.close()
        entry = {"rows": a.num_rows, "schema": [f"{f.name}:{f.type}" for f in a.schema]}
        if q.get("params") is None:
            info_schema, f = flight_table(uri, token, q["sql"])
            assert f.schema.equals(a.schema), f"{q['name']}: pyarrow.flight {f.schema} vs ADBC {a.schema}"
            assert f.equals(a), f"{q['name']}: pyarrow.flight and ADBC rows differ"
            assert info_schema.equals(a.schema), f"{q['name']}: FlightInfo schema {info_schema}"
            entry["flight_rows"] = f.num_rows
        expected = read_csv(q["csv"], a.schema)
        assert expected.num_rows == a.num_rows, f"{q['name']}: {a.num_rows} rows, CSV has {expected.num_rows}"
        if not expected.equals(a):
            for name in a.schema.names:
                if not expected[name].equals(a[name]):
                    raise AssertionError(
                        f"{q['name']}: column {name} differs: flight {a[name][:3]} csv {expected[name][:3]}")
        entry["equal_to_csv"] = True
        out["queries"][q["name"]] = entry

    # Catalog: every table with its schema.
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = {}
    for cat in objects:
        for sch in cat["catalog_db_schemas"] or []:
            for t in sch["db_schema_tables"] or []:
                tables[t["table_name"]] = {
                    "type": t["table_type"],
                    "columns": [c["column_name"] for c in t["table_columns"] or []],
                }
    out["objects"] = tables
    schemas = {}
    for name in tables:
        s = conn.adbc_get_table_schema(name)
        schemas[name] = [f"{f.name}:{f.type}" for f in s]
    out["table_schemas"] = schemas
    out["table_types"] = sorted(conn.adbc_get_table_types())
    info = conn.adbc_get_info()
    out["vendor_name"] = info.get("vendor_name")

    # Refusals: statements that write or read files.
    for sql in cases["refused"]:
        cur = conn.cursor()
        try:
            cur.execute(sql)
            cur.fetch_arrow_table()
            out["refused"][sql] = None
        except Exception as e:  # noqa: BLE001 - the message is what we check
            out["refused"][sql] = str(e).splitlines()[0]
        finally:
            cur.close()
    conn.close()

    # No token, and a revoked one.
    for label, tok in [("none", None), ("revoked", cases["revoked"])]:
        try:
            c = adbc_connect(uri, tok)
            cur = c.cursor()
            cur.execute("SELECT 1")
            cur.fetch_arrow_table()
            out["auth"][label] = None
        except Exception as e:  # noqa: BLE001
            out["auth"][label] = str(e).splitlines()[0]
    try:
        fl.FlightClient(uri).authenticate_basic_token("finopsia", cases["revoked"])
        out["auth"]["handshake_revoked"] = None
    except Exception as e:  # noqa: BLE001
        out["auth"]["handshake_revoked"] = str(e).splitlines()[0]

    # A large result, streamed and counted batch by batch (never held whole).
    if cases.get("stream"):
        client = fl.FlightClient(uri)
        header = client.authenticate_basic_token("finopsia", token)
        options = fl.FlightCallOptions(headers=[header])
        started = time.monotonic()
        info = client.get_flight_info(
            fl.FlightDescriptor.for_command(statement_query(cases["stream"]["sql"])), options)
        rows = batches = 0
        for e in info.endpoints:
            reader = client.do_get(e.ticket, options)
            for chunk in reader:
                rows += chunk.data.num_rows
                batches += 1
        secs = time.monotonic() - started
        out["stream"] = {"rows": rows, "batches": batches, "seconds": secs,
                         "rows_per_sec": rows / secs if secs > 0 else None}
    json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
