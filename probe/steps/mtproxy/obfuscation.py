"""obfuscated2 keyed with an MTProxy secret, as a byte stream the MTProto step runs over.

Like obfuscated2 to a data centre (probe.steps.mtproto.transports), with the secret mixed into
both keys: the client's key is SHA-256(header[8:40] ‖ secret), the server's SHA-256 of the
reversed run header[55:7:-1]'s first 32 bytes ‖ secret; the IVs are unchanged (header[40:56],
and the reversed run's last 16 bytes). Only a server that knows the secret can read the tag in
bytes 56–59 (which inner framing follows) and the DC id in bytes 60–61 (which DC to relay to).

`ObfuscatedProxyStream` takes the bytes `mtproto_handshake` writes for a plain transport (its
4-byte marker, then the framed packet), turns the marker into the tag of a fresh header and
encrypts the rest; replies are decrypted before the MTProto step parses them. The raw bytes
that came back are kept (`raw_head`) so that a clear-text answer (an HTTP blockpage, a TLS
alert) is still recognised for what it was.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe.steps.mtproto.transports import (
    INTERMEDIATE_MARKER,
    OBFUSCATION_HEADER_LENGTH,
    PADDED_INTERMEDIATE_MARKER,
    random_obfuscation_header,
)
from probe.steps.tcp import ByteStream

#: raw reply bytes kept for `looks_foreign` and the record's evidence
RAW_HEAD_KEPT = 32
_MARKERS = (INTERMEDIATE_MARKER, PADDED_INTERMEDIATE_MARKER)


class StreamCipher(Protocol):
    def update(self, data: bytes) -> bytes: ...


def _ctr(key: bytes, iv: bytes) -> StreamCipher:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


def proxy_keys(header: bytes, secret: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(client key, client iv, server key, server iv) of an obfuscated2 header and a secret."""
    run = header[8:56][::-1]
    return (
        hashlib.sha256(header[8:40] + secret).digest(),
        header[40:56],
        hashlib.sha256(run[:32] + secret).digest(),
        run[32:48],
    )


def proxy_header(
    secret: bytes, tag: bytes, dc: int, header: bytes | None = None
) -> tuple[bytes, StreamCipher, StreamCipher]:
    """(the 64 header bytes to send, encryptor, decryptor) for `tag` and `dc`; `header` (random
    when None, obeying obfuscated2's forbidden prefixes) is for tests."""
    plain = bytearray(header if header is not None else random_obfuscation_header())
    if len(plain) != OBFUSCATION_HEADER_LENGTH:
        raise ValueError("an obfuscation header is 64 bytes")
    plain[56:60] = tag
    plain[60:62] = struct.pack("<h", dc)
    client_key, client_iv, server_key, server_iv = proxy_keys(bytes(plain), secret)
    encryptor = _ctr(client_key, client_iv)
    encrypted = encryptor.update(bytes(plain))
    wire = bytes(plain[:56]) + encrypted[56:64]
    return wire, encryptor, _ctr(server_key, server_iv)


class ObfuscatedProxyStream:
    """A ByteStream for `mtproto_handshake`: plain transport bytes in, obfuscated2 out."""

    def __init__(self, inner: ByteStream, secret: bytes, dc: int) -> None:
        self.inner = inner
        self._secret = secret
        self._dc = dc
        self._encryptor: StreamCipher | None = None
        self._decryptor: StreamCipher | None = None
        self.raw_head = b""
        self.bytes_sent = 0  # what the underlying stream counted, updated after each operation
        self.bytes_received = 0

    async def send_all(self, data: bytes) -> None:
        if self._encryptor is None:
            if data[:4] not in _MARKERS:
                raise ValueError("an MTProxy stream starts with a 4-byte transport marker")
            wire, self._encryptor, self._decryptor = proxy_header(self._secret, data[:4], self._dc)
            data = data[4:]
        else:
            wire = b""
        await self.inner.send_all(wire + self._encryptor.update(data))
        self.bytes_sent = self.inner.bytes_sent

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        chunk = await self.inner.receive_some(max_bytes)
        self.bytes_received = self.inner.bytes_received
        if len(self.raw_head) < RAW_HEAD_KEPT:
            self.raw_head += chunk[: RAW_HEAD_KEPT - len(self.raw_head)]
        if self._decryptor is None:
            return chunk
        return bytes(self._decryptor.update(chunk))

    async def aclose(self) -> None:
        await self.inner.aclose()

    def expect(self, needed: int | None) -> None:
        self.inner.expect(needed)
