"""Reading a measure request, which may come from anyone: its targets in the one wire format
of `probe.targets` (`Target.from_wire`, the list loader's own checks) within the control's
limits, and a target's own roots (`x_ca_pem`), checked and kept in memory."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from probe.control.limits import (
    MAX_CA_CERTIFICATES,
    MAX_CA_PEM_BYTES,
    MAX_CA_PEMS_PER_REQUEST,
    MAX_PORTS_PER_TARGET,
    MAX_TARGET_ID_CHARS,
)
from probe.steps.tls_context import CAText
from probe.targets import Target, TargetWireError


class BadRequest(ValueError):
    pass


def parse_targets(body: Any, max_targets: int) -> list[Target]:
    """The targets of a request's JSON body; BadRequest says what is wrong with it."""
    if not isinstance(body, dict) or not isinstance(body.get("targets"), list):
        raise BadRequest('expected {"targets": [...]}')
    raw = body["targets"]
    if not raw:
        raise BadRequest("no targets")
    if len(raw) > max_targets:
        raise BadRequest(f"too many targets: {len(raw)} > {max_targets}")
    targets = [target_from_request(d) for d in raw]
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("duplicate target ids")
    roots = {t.ca for t in targets if t.ca is not None}
    if len(roots) > MAX_CA_PEMS_PER_REQUEST:
        raise BadRequest(
            f"{len(roots)} different x_ca_pem in one request (at most {MAX_CA_PEMS_PER_REQUEST})"
        )
    return targets


def target_from_request(d: Any) -> Target:
    """A Target from a request's target definition (its wire format, `Target.from_wire`),
    checked as strictly as the probe's list loader checks a list: it comes from anyone. A
    target's own roots (`x_ca_pem`) stay in memory (`tls_context.CAText`)."""
    try:
        target = Target.from_wire(d)
    except TargetWireError as exc:
        raise BadRequest(str(exc)) from None
    if len(target.id) > MAX_TARGET_ID_CHARS:
        raise BadRequest(f"target id longer than {MAX_TARGET_ID_CHARS} characters")
    if len(target.ports) > MAX_PORTS_PER_TARGET:
        raise BadRequest(f"target {target.id}: at most {MAX_PORTS_PER_TARGET} ports")
    ca_pem = d.get("x_ca_pem")
    if ca_pem is not None:
        target = dataclasses.replace(target, ca=caller_roots(ca_pem, target.id))
    return target


def caller_roots(pem: Any, target_id: str) -> CAText:
    """A target's extra roots, checked by OpenSSL on a context of their own (no system store)
    and kept in memory: nothing a client sends is written to disk."""
    if not isinstance(pem, str) or not pem or len(pem) > MAX_CA_PEM_BYTES:
        raise BadRequest(f"target {target_id}: x_ca_pem must be a PEM string up to 64 KiB")
    if not pem.isascii():
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate")
    probe_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe_context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate") from None
    count = probe_context.cert_store_stats().get("x509", 0)
    if count == 0:
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate")
    if count > MAX_CA_CERTIFICATES:
        raise BadRequest(
            f"target {target_id}: x_ca_pem holds {count} certificates"
            f" (at most {MAX_CA_CERTIFICATES})"
        )
    return CAText(pem)
