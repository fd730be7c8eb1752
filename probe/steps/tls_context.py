"""TLS client contexts: the SSL context the handshake step verifies with.

`client_context` builds (and caches, CONTEXT_CACHE_SIZE at most) a context over the system trust
store plus extra PEM roots, from files or held in memory as `CAText` (the control's per-request
roots); verification is always on, TLS 1.2 at least, ALPN http/1.1. `without_hostname_check`
derives the variant the handshake uses when it has no server name to check. The handshake and
the encrypted stream themselves live in `probe.steps.tls`.
"""

from __future__ import annotations

import functools
import ssl
import weakref

#: Our HTTP layer speaks HTTP/1.1 only (steps/http/wire.py); offering h2 would invite a
#: protocol we cannot read.
ALPN_PROTOCOLS = ["http/1.1"]


#: How many client contexts stay cached. Each holds a copy of the system trust store (~0.8 MB):
#: the probe needs one or two, the control one per distinct set of caller roots it measures
#: with (the control also bounds how many sets one request may bring, MAX_CA_PEMS_PER_REQUEST).
CONTEXT_CACHE_SIZE = 16


class CAText(str):
    """PEM roots held in memory, usable wherever `client_context` takes a CA file path: the
    control loads the roots a request brings from the request itself, never from disk. Never
    equal to a path (or to a plain string with the same text)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is CAText and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((CAText, str.__hash__(self)))

    def __repr__(self) -> str:
        return f"CAText(<{len(self)} characters of PEM>)"


def client_context(ca_files: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The client context: the system trust store plus the PEM roots in `ca_files` (paths, or
    `CAText` roots held in memory).

    Verification is on (CERT_REQUIRED, host name checked), TLS 1.2 at least, ALPN http/1.1.
    The last CONTEXT_CACHE_SIZE contexts are cached per tuple because loading a trust store
    takes milliseconds each time. Raises ValueError naming the file when a CA file cannot be
    read or holds no certificate.
    """
    context = _build_context(tuple(ca_files), check_hostname=True)
    _CONTEXT_ROOTS[context] = tuple(ca_files)
    return context


#: Which extra roots each context from `client_context` was built with (to derive variants).
_CONTEXT_ROOTS: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[str, ...]] = (
    weakref.WeakKeyDictionary()
)


@functools.lru_cache(maxsize=CONTEXT_CACHE_SIZE)
def _build_context(ca_files: tuple[str, ...], *, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    for path in ca_files:
        if isinstance(path, CAText):
            load_ca_text(context, path)
            continue
        try:
            context.load_verify_locations(cafile=path)
        except FileNotFoundError:
            raise ValueError(f"{path}: CA file not found") from None
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            raise ValueError(f"{path}: not a PEM certificate file ({reason})") from None
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"{path}: cannot read CA file ({exc})") from None
    return context


def load_ca_text(context: ssl.SSLContext, pem: str) -> None:
    """Add the PEM roots in `pem` to `context`; ValueError when OpenSSL finds none."""
    try:
        context.load_verify_locations(cadata=str(pem))
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"not PEM certificates ({reason})") from None


def without_hostname_check(context: ssl.SSLContext) -> ssl.SSLContext:
    """A context like `context` that verifies the chain but no name (for `server_name=None`)."""
    if not context.check_hostname:
        return context
    roots = _CONTEXT_ROOTS.get(context)
    if roots is not None:
        return _build_context(roots, check_hostname=False)
    # A context built elsewhere: copy the settings and the roots it has loaded so far.
    copy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    copy.check_hostname = False
    copy.verify_mode = context.verify_mode
    copy.minimum_version = context.minimum_version
    copy.maximum_version = context.maximum_version
    copy.verify_flags = context.verify_flags
    for der in context.get_ca_certs(binary_form=True):
        copy.load_verify_locations(cadata=der)
    copy.set_alpn_protocols(ALPN_PROTOCOLS)
    return copy
