"""OONI measurements → our result records, so `probe analyze` and `probe report` treat them alike:
`normalise` reads OONI's observation lists into our types (older spellings included),
`control_reply` maps Web Connectivity's test-helper reply onto our control observations, `units`
splits one measurement into one record per thing it measured and names each by our target id
(else ``ooni/<test_name>/<endpoint>``), `records` checks measurements and builds the records
(test-specific parts: dnscheck, resolver connections, the control), and `analyze` re-analyses
stored files for `probe analyze`.
"""

from probe.report.ooni.analyze import AnalyzedRecord, AnalyzeNote, analyze_paths
from probe.report.ooni.control_reply import control_from_test_helper
from probe.report.ooni.normalise import (
    LEGACY_FAILURES,
    MAX_OBSERVATIONS_PER_LIST,
    WEB_SCHEMES,
    observations_from_test_keys,
)
from probe.report.ooni.records import (
    ENVELOPE_KEYS,
    OUR_SOFTWARE,
    derived_report_id,
    is_measurement,
    is_ours,
    measurement_problem,
    records_from_measurement,
)
from probe.report.ooni.units import MESSENGER_TESTS, SCHEME_CHECKS, SPLIT_BY_HOST_TESTS

__all__ = [
    "ENVELOPE_KEYS",
    "LEGACY_FAILURES",
    "MAX_OBSERVATIONS_PER_LIST",
    "MESSENGER_TESTS",
    "OUR_SOFTWARE",
    "SCHEME_CHECKS",
    "SPLIT_BY_HOST_TESTS",
    "WEB_SCHEMES",
    "AnalyzeNote",
    "AnalyzedRecord",
    "analyze_paths",
    "control_from_test_helper",
    "derived_report_id",
    "is_measurement",
    "is_ours",
    "measurement_problem",
    "observations_from_test_keys",
    "records_from_measurement",
]
