"""Keeping the volunteer's address out of result records (`Scrubber.scrub_record`): the
learned own address in every spelling, or, when it is unknown, every identifying address in free
text that the record did not measure. `scrubber` holds the policy (what is ours, what
identifies, the two modes, `safe_resolver_ip`), `candidates` finds every run of text that can
spell an address, `text` judges and replaces them in one string or binary field, `paths` says
which strings of a record are structured, free text or bytes (and what a record measured), and
`walk` visits a record once, copy on write.
"""

from probe.vantage.scrub.candidates import literals
from probe.vantage.scrub.paths import (
    _OBSERVATIONS_STRUCTURED as _OBSERVATIONS_STRUCTURED,  # for tests
)
from probe.vantage.scrub.paths import _QUERY_STRUCTURED as _QUERY_STRUCTURED
from probe.vantage.scrub.paths import (
    BINARY_PATHS,
    FREE_TEXT_PATHS,
    MEASURED_ADDRESS_PATHS,
    STRUCTURED_PATHS,
    measured_addresses,
)
from probe.vantage.scrub.paths import _paths as _paths
from probe.vantage.scrub.scrubber import (
    ANNOTATION,
    COUNT_ANNOTATION,
    DOCUMENTATION_NETS,
    LAB_NETS,
    MODE_KNOWN,
    MODE_UNKNOWN,
    MODE_UNKNOWN_REDACTED,
    PUBLIC_RESOLVERS,
    Network,
    Scrubber,
    ScrubReport,
    safe_resolver_ip,
)

__all__ = [
    "ANNOTATION",
    "BINARY_PATHS",
    "COUNT_ANNOTATION",
    "DOCUMENTATION_NETS",
    "FREE_TEXT_PATHS",
    "LAB_NETS",
    "MEASURED_ADDRESS_PATHS",
    "MODE_KNOWN",
    "MODE_UNKNOWN",
    "MODE_UNKNOWN_REDACTED",
    "PUBLIC_RESOLVERS",
    "STRUCTURED_PATHS",
    "Network",
    "ScrubReport",
    "Scrubber",
    "literals",
    "measured_addresses",
    "safe_resolver_ip",
]
