"""Known blocking fingerprints — DNS answers and HTTP blockpages — and matching against them:
`rows` reads and checks the community database's CSV files (OONI's blocking-fingerprints, FACTS.md
§5) into `Fingerprint`s and says what a `Match` proves (confirmed, foreign, false positive);
`body` is the prefilter that lets `match_http` search only the body patterns a page can match;
`db` holds `FingerprintDB` (`load`, `match_dns`, `match_http`) and `default_db()`; `cache` keeps
the bundled files parsed and indexed in the user cache directory, so that a start does not parse
them again (any problem with it only means parsing them). The package
ships copies of the community files plus `fingerprints_extra.csv` (rows the community files lack,
e.g. Iran's IPv6 injection addresses); users add newer copies or their own rows with
``--fingerprints FILE``.
"""

from probe.analysis.fingerprints.body import (
    IN_WORD,
    WHOLE_WORD,
    WORD_END,
    WORD_START,
    body_keys,
    body_words,
    regex_literal_prefix,
    required_word,
)
from probe.analysis.fingerprints.db import FingerprintDB, default_db
from probe.analysis.fingerprints.rows import (
    BODY_MATCH_LIMIT,
    BUNDLED_FILES,
    CONFIRMED_SCOPES,
    FALSE_POSITIVE_SCOPE,
    HEADER,
    MAX_FILE_BYTES,
    MAX_PATTERN_LENGTH,
    MAX_ROWS_PER_FILE,
    PATTERN_TYPES,
    REGEX_INPUT_LIMIT,
    SCOPES,
    UNKNOWN_COUNTRY,
    Fingerprint,
    Match,
    known_country,
    parse_csv,
)

__all__ = [
    "BODY_MATCH_LIMIT",
    "BUNDLED_FILES",
    "CONFIRMED_SCOPES",
    "FALSE_POSITIVE_SCOPE",
    "HEADER",
    "IN_WORD",
    "MAX_FILE_BYTES",
    "MAX_PATTERN_LENGTH",
    "MAX_ROWS_PER_FILE",
    "PATTERN_TYPES",
    "REGEX_INPUT_LIMIT",
    "SCOPES",
    "UNKNOWN_COUNTRY",
    "WHOLE_WORD",
    "WORD_END",
    "WORD_START",
    "Fingerprint",
    "FingerprintDB",
    "Match",
    "body_keys",
    "body_words",
    "default_db",
    "known_country",
    "parse_csv",
    "regex_literal_prefix",
    "required_word",
]
