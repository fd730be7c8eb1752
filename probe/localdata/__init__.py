"""What the probe keeps on this device, and taking it away again: the round files in a results
directory and which files count as the probe's own (`files`), past rounds read back for
`probe results` (`rounds`), retention of old rounds (`retention`) and `probe purge` (`purge`).
Nothing here deletes a file that is not the probe's, or follows a symbolic link."""

from __future__ import annotations

from probe.localdata.files import RoundFile, is_probe_result_file, parse_round_file, round_files
from probe.localdata.purge import PurgeDone, PurgePlan, ResultsDir, execute, plan_purge
from probe.localdata.retention import MAX_KEEP_DAYS, Expired, expire_rounds
from probe.localdata.rounds import (
    RoundNotFound,
    RoundSummary,
    find_round,
    list_rounds,
    plain_text,
    read_round,
    round_countries,
)

__all__ = [
    "MAX_KEEP_DAYS",
    "Expired",
    "PurgeDone",
    "PurgePlan",
    "ResultsDir",
    "RoundFile",
    "RoundNotFound",
    "RoundSummary",
    "execute",
    "expire_rounds",
    "find_round",
    "is_probe_result_file",
    "list_rounds",
    "parse_round_file",
    "plain_text",
    "plan_purge",
    "read_round",
    "round_countries",
    "round_files",
]
