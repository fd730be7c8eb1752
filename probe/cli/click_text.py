"""Click's own words that a volunteer meets (help, usage errors, a prompt's error line),
listed so that Babel extracts them into our catalog: probe/cli/localized.py points click's
translations at it. Each string is click's msgid exactly (click 8.2 to 8.5); one that a click
version no longer uses is harmless (that text is then shown in English).
"""

from __future__ import annotations

from probe.i18n import N_, NP_

CLICK_MESSAGES = (
    # help
    N_("Usage:"),
    N_("Options"),
    N_("Commands"),
    N_("Show this message and exit."),
    N_("Show the version and exit."),
    N_("default: {default}"),
    N_("env var: {var}"),
    N_("required"),
    # usage errors
    N_("No such option {name!r}."),
    N_("No such command {name!r}."),
    N_("Missing command."),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Invalid value: {message}"),
    N_("Missing argument"),
    N_("Missing option"),
    N_("Missing parameter"),
    N_("Missing {param_type}"),
    N_("Option {name!r} does not take a value."),
    N_("{value!r} is not a valid {number_type}."),
    N_("{value} is not in the range {range}."),
    N_("{value!r} is not a valid boolean. Recognized values: {states}"),
    N_("{name} {filename!r} does not exist."),
    N_("{name} {filename!r} is a directory."),
    N_("{name} {filename!r} is not readable."),
    N_("file"),
    N_("directory"),
    N_("path"),
    # a prompt's answer that is not accepted (consent, probe purge): click 8.3+, then 8.2
    N_("Error: {message}"),
    N_("Error: {e.message}"),
)
#: click's messages with a plural form (it translates them with ngettext)
CLICK_PLURALS = (
    NP_("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"),
    NP_("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."),
    NP_("{value!r} is not {choice}.", "{value!r} is not one of {choices}."),
    NP_("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"),
)
