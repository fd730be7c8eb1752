"""One request to the collector: a batch of records posted as gzipped JSON Lines, and the
reply read back into what happened to each record.

A record counts as delivered only when the reply's line for it says `stored` or `duplicate`
with the record's own content hash; `rejected` carries the collector's reason. Anything else
— no connection, a timeout, an HTTP error (401, 413, 5xx, 503 with Retry-After, 507), a reply
that is not the collector's JSON or does not name every line — is an `UploadError`: the batch
stays pending and is sent again later, which the collector answers with `duplicate` for
what it already stored."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from probe import __version__
from probe.upload.proxy import Proxy, records_url

if TYPE_CHECKING:
    # imported where used: `probe run` imports this module for its options, and httpx
    # costs ~50 ms of start-up that a round without --upload never needs
    import httpx

#: Bytes of a reply read at most (a reply to 1,000 lines is about 100 KB).
MAX_REPLY_BYTES = 4 * 1024 * 1024


class UploadError(Exception):
    """The batch was not acknowledged; `message` is one plain line for the volunteer."""

    def __init__(self, message: str, *, retry_after: float = 0.0, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status = status


@dataclass(slots=True)
class BatchResult:
    """What the collector said about each record of a batch (indices into the batch)."""

    delivered: list[int] = field(default_factory=list)
    stored: int = 0
    duplicate: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    #: records the reply does not acknowledge properly (kept pending)
    unmatched: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    url: str
    token: str | None = None
    proxy: Proxy | None = None
    ca_files: tuple[str, ...] = ()
    #: seconds for one request, connection to reply
    timeout: float = 300.0


def read_reply(hashes: list[bytes], body: bytes) -> BatchResult:
    """The per-line outcomes of a 200 reply to a batch whose records have `hashes` (line i
    of the body is record i - 1). Raises UploadError when the reply is not one."""
    try:
        reply = json.loads(body)
        lines = reply["lines"]
        if not isinstance(lines, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UploadError("the collector's reply is not what a collector sends") from None
    result = BatchResult()
    seen: set[int] = set()
    for line in lines:
        index = _index(line, len(hashes))
        if index is None or index in seen:
            continue
        seen.add(index)
        status = line.get("status")
        if status in ("stored", "duplicate") and line.get("sha256") == hashes[index].hex():
            result.delivered.append(index)
            result.stored += status == "stored"
            result.duplicate += status == "duplicate"
        elif status == "rejected":
            result.rejected[index] = str(line.get("reason") or "no reason given")[:300]
        else:
            result.unmatched.append(index)
    result.unmatched.extend(i for i in range(len(hashes)) if i not in seen)
    return result


def _index(line: Any, count: int) -> int | None:
    if not isinstance(line, dict):
        return None
    number = line.get("line")
    if type(number) is not int or not 1 <= number <= count:
        return None
    return number - 1


class CollectorClient:
    """Posts batches to one collector (through the proxy, if any); use `async with`."""

    def __init__(self, settings: ClientSettings) -> None:
        import httpx

        from probe.steps.tls_context import client_context

        self.settings = settings
        proxy = settings.proxy.url if settings.proxy is not None else None
        self.http = httpx.AsyncClient(
            proxy=proxy,
            verify=client_context(settings.ca_files),
            # our own settings only: an HTTP(S)_PROXY meant for a browser must not redirect
            # the upload without the volunteer saying so (PROBE_UPLOAD_PROXY does)
            trust_env=False,
            timeout=httpx.Timeout(60.0, read=min(settings.timeout, 240.0)),
            follow_redirects=False,
        )

    async def __aenter__(self) -> CollectorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def send(self, lines: list[bytes], hashes: list[bytes]) -> BatchResult:
        """Post one batch; its outcome per record, or UploadError."""
        import httpx

        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6)
        url, headers, extensions = await self._target()
        headers.update(
            {
                "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip",
                "User-Agent": f"probe/{__version__}",
                "Accept": "application/json",
            }
        )
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        try:
            async with asyncio.timeout(self.settings.timeout):
                request = self.http.build_request(
                    "POST", url, content=body, headers=headers, extensions=extensions
                )
                response = await self.http.send(request, stream=True)
                try:
                    reply = await _read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise UploadError("the collector did not answer in time") from None
        except httpx.ProxyError as exc:
            raise UploadError(f"the proxy refused the connection ({_short(exc)})") from None
        except (httpx.HTTPError, OSError) as exc:
            raise UploadError(_network_error(exc, self.settings.proxy)) from None
        if response.status_code != 200:
            raise _http_error(response.status_code, response.headers, reply)
        return read_reply(hashes, reply)

    async def _target(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The URL to post to, extra headers and httpx extensions. Through `socks5://` the
        collector's name is resolved here and the proxy is given the address; the Host header
        and the TLS server name stay the name."""
        url = records_url(self.settings.url)
        proxy = self.settings.proxy
        parts = urlsplit(url)
        host = parts.hostname or ""
        if proxy is None or proxy.remote_dns or _is_address(host):
            return url, {}, {}
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UploadError(
                f"cannot resolve {host} ({exc.strerror or exc}); with socks5h:// the proxy does"
            ) from None
        address = str(infos[0][4][0])
        shown = f"[{address}]" if ":" in address else address
        netloc = f"{shown}:{port}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}, extensions


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > MAX_REPLY_BYTES:
            raise UploadError("the collector's reply is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def _network_error(exc: BaseException, proxy: Proxy | None) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "the collector did not answer in time"
    where = f"through the proxy {proxy.shown}" if proxy is not None else "collector unreachable"
    if isinstance(exc, httpx.ConnectError):
        return f"{where}: cannot connect ({_short(exc)})" if proxy else f"{where} ({_short(exc)})"
    return f"the connection broke off ({_short(exc)})"


def _http_error(status: int, headers: httpx.Headers, body: bytes) -> UploadError:
    try:
        said = str(json.loads(body).get("error", ""))[:200]
    except (ValueError, AttributeError):
        said = ""
    retry_after = 0.0
    text = headers.get("Retry-After", "")
    if text.isdigit():
        retry_after = min(float(text), 24 * 3600.0)
    messages = {
        401: "the collector refused the token (check --token or [upload] token)",
        413: "the collector found the batch too large",
        503: "the collector is busy",
        507: "the collector's disk is full",
    }
    message = messages.get(status, f"the collector answered HTTP {status}")
    if said:
        message = f"{message}: {said}"
    return UploadError(message, retry_after=retry_after, status=status)
