"""The keys DESIGN.md's "Contract: result records" requires, written out from the contract
itself (not read from docs/record.schema.json, so the schema cannot drift unnoticed)."""

REQUIRED_KEYS = {
    "data_format_version",
    "software_name",
    "software_version",
    "test_name",
    "test_version",
    "input",
    "report_id",
    "measurement_start_time",
    "test_start_time",
    "test_runtime",
    "probe_asn",
    "probe_cc",
    "probe_ip",
    "resolver_ip",
    "annotations",
    "test_keys",
}

REQUIRED_TEST_KEYS = {
    "target",
    "list",
    "queries",
    "tcp_connect",
    "tls_handshakes",
    "requests",
    "network_events",
    "mtproto",
    "x_endpoints",
    "x_vantage",
    "control",
    "control_failure",
    "verdict",
}
