"""Lab scenarios of the SNI swap and residual blocking (issue 19 items 1-2, docs/verdicts.md).

The control's neutral TLS server (`probe control serve --neutral-tls-port 443`, started by
tests/lab/lab.py) listens on CONTROL_IP:443, behind the censor as seen from the client, so
the censor sees the target's name there too. `probe run` gets `--neutral-server` and
`--residual-window` through the scenario's `probe_args`. The self-checks do not check the
neutral server: it runs only once the control does (`lab_with_control`); a verdict that needs
it (`ip-filter`) fails loudly without it."""

from __future__ import annotations

from tests.lab.censor import Censor
from tests.lab.scenarios import Expect, Scenario, SelfCheck, tls
from tests.lab.topology import CONTROL_IP, WEB2_IP, WEB_IP

NEUTRAL_TLS_PORT = 443
#: how long the residual censor punishes a (client, address, port) after a trigger, s
RESIDUAL_SECONDS = 4.0
NEUTRAL_ARGS = ("--neutral-server", f"{CONTROL_IP}:{NEUTRAL_TLS_PORT}")
SWAP_ARGS = (
    "--neutral-server", f"{CONTROL_IP}:{NEUTRAL_TLS_PORT}", "--residual-window", "20",
)  # fmt: skip


def tls_after(
    where: str, ip: str, sni: str, expect: str | tuple[str, ...], delay: float
) -> SelfCheck:
    """A TLS self-check that starts `delay` s after the others (they run concurrently)."""
    check = {"kind": "tls", "ip": ip, "port": 443, "sni": sni, "delay": delay}
    return SelfCheck(where, check, expect)


SNI_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sni-residual",
        f"A ClientHello naming web.telegram.org is reset, and for {RESIDUAL_SECONDS:g} s after "
        "it every connection of the client to that address and port is reset (residual "
        "blocking): the probe measures how long, and names SNI filtering.",
        censor=Censor(
            sni_names=("web.telegram.org",), sni_action="reset", sni_residual=RESIDUAL_SECONDS
        ),
        expected={
            "telegram/web": Expect(
                "blocked",
                "tls",
                evidence="sni-filter",
                residual=(RESIDUAL_SECONDS - 1.0, RESIDUAL_SECONDS + 4.0),
            )
        },
        self_checks=(
            tls("client", WEB_IP, "web.telegram.org", "reset"),
            # right after the trigger even a benign name is reset: residual blocking
            tls_after("client", WEB_IP, "www.example.org", "reset", delay=0.5),
            tls("client", WEB2_IP, "telegram.org", "ok"),
            tls("control", WEB_IP, "web.telegram.org", "ok"),
        ),
        probe_args=SWAP_ARGS,
    ),
    Scenario(
        "sni-no-residual",
        "A ClientHello naming web.telegram.org is reset, with no residual blocking: the "
        "benign name gets through at once, so the probe records no residual blocking.",
        censor=Censor(sni_names=("web.telegram.org",), sni_action="reset"),
        expected={"telegram/web": Expect("blocked", "tls", evidence="sni-filter")},
        self_checks=(
            tls("client", WEB_IP, "web.telegram.org", "reset"),
            tls_after("client", WEB_IP, "www.example.org", ("tls_error", "ok"), delay=0.5),
            tls("control", WEB_IP, "web.telegram.org", "ok"),
        ),
        probe_args=SWAP_ARGS,
    ),
    Scenario(
        "tls-ip-filter",
        "Every ClientHello to web.telegram.org's address is reset, whatever its name; the "
        "name itself works on the neutral server: the probe names address filtering.",
        censor=Censor(tls_reset_ips=(WEB_IP,)),
        expected={"telegram/web": Expect("blocked", "tls", evidence="ip-filter")},
        self_checks=(
            tls("client", WEB_IP, "web.telegram.org", "reset"),
            tls("client", WEB_IP, "www.example.org", "reset"),
            tls("client", WEB2_IP, "telegram.org", "ok"),
            tls("control", WEB_IP, "web.telegram.org", "ok"),
        ),
        # no residual window: a benign flow that never works would only fill it
        probe_args=NEUTRAL_ARGS,
    ),
    Scenario(
        "sni-swap-quiet",
        "No censorship, with the SNI swap's options on: every handshake works, so the probe "
        "makes no extra connection and names no evidence and no residual blocking.",
        expected={},
        self_checks=(
            tls("client", WEB_IP, "web.telegram.org", "ok"),
            tls("control", WEB_IP, "web.telegram.org", "ok"),
        ),
        probe_args=SWAP_ARGS,
    ),
)
