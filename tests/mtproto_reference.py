"""A deliberately simple second implementation of obfuscated2, used only by the tests.

It follows the protocol text (FACTS.md §2, Telegram's "Transport obfuscation" page) step by step
and shares no code with `probe.steps.mtproto`: AES-256-CTR is built here from the AES block function
(`cryptography`'s AES in ECB mode, one 16-byte block at a time) and a hand-rolled 128-bit
big-endian counter, so a mistake in how probe.steps.mtproto drives the library's CTR mode (wrong IV,
wrong direction, keystream not continued after the header) shows up as different bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

BLOCK = 16


class ReferenceCTR:
    """AES-256-CTR: keystream block i = AES_k(iv + i mod 2¹²⁸), XORed onto the data."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        assert len(key) == 32 and len(iv) == 16
        self._block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self._counter = int.from_bytes(iv, "big")
        self._keystream = b""

    def _next_block(self) -> bytes:
        block = self._block.update(self._counter.to_bytes(BLOCK, "big"))
        self._counter = (self._counter + 1) % (1 << 128)
        return block

    def apply(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if not self._keystream:
                self._keystream = self._next_block()
            out.append(byte ^ self._keystream[0])
            self._keystream = self._keystream[1:]
        return bytes(out)


def reference_obfuscated2(
    random_header: bytes, tag: bytes, first_packet: bytes, dc: int | None = None
) -> tuple[bytes, ReferenceCTR]:
    """What a client sends for `first_packet` (already framed) after `random_header`.

    Returns the wire bytes and the cipher that decrypts the server's reply.

    1. Take 64 random bytes (the caller checked the forbidden prefixes).
    2. Put the transport tag in bytes 56..59 and, when given, the DC id in bytes 60..61 (a signed
       little-endian 16-bit number, negative for media-only DCs: TDLib's ObfuscatedTransport::init
       and Telegram Desktop's TcpConnection::prepareConnectionStartPrefix).
    3. The client's sending key is bytes 8..39 and its IV bytes 40..55.
    4. Reverse bytes 8..55: the first 32 of the reversed run are the receiving key, the next 16
       the receiving IV.
    5. Encrypt the whole 64-byte header with the sending cipher; send bytes 0..55 as they were
       and bytes 56..63 in their encrypted form.
    6. Keep encrypting with the same cipher (its keystream continues at offset 64) for all data.
    """
    header = bytearray(random_header)
    header[56:60] = tag
    if dc is not None:
        header[60:62] = dc.to_bytes(2, "little", signed=True)
    send_key = bytes(header[8:40])
    send_iv = bytes(header[40:56])
    reversed_run = bytes(reversed(header[8:56]))
    receive_key = reversed_run[0:32]
    receive_iv = reversed_run[32:48]
    sender = ReferenceCTR(send_key, send_iv)
    encrypted_header = sender.apply(bytes(header))
    wire = bytes(header[0:56]) + encrypted_header[56:64] + sender.apply(first_packet)
    return wire, ReferenceCTR(receive_key, receive_iv)


def reference_server_reply(random_header: bytes, tag: bytes, reply_packet: bytes) -> bytes:
    """What the server sends for `reply_packet` on the connection opened by `random_header`:
    the server encrypts with the client's receiving key and IV (step 4 above), from offset 0."""
    header = bytearray(random_header)
    header[56:60] = tag
    reversed_run = bytes(reversed(header[8:56]))
    return ReferenceCTR(reversed_run[0:32], reversed_run[32:48]).apply(reply_packet)


# --- Telegram's RSA keys and their fingerprints ---------------------------------------------
#
# The public keys built into official clients, copied here from their sources (public keys, not
# secrets) so that the fingerprints in probe.steps.mtproto can be checked by recomputing them:
# - TDLib, td/telegram/net/PublicRsaKeySharedMain.cpp (github.com/tdlib/td): the production key
#   and the test-DC key;
# - Telegram Desktop, Telegram/SourceFiles/mtproto/mtproto_dc_options.cpp, kPublicRSAKeys at
#   commit 74d23137844ad43ba746a481373dc4daf5d003a8 (github.com/telegramdesktop/tdesktop): the
#   five keys an earlier release shipped.

TELEGRAM_PUBLIC_KEYS = {
    "tdlib-production": b"""-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA6LszBcC1LGzyr992NzE0ieY+BSaOW622Aa9Bd4ZHLl+TuFQ4lo4g
5nKaMBwK/BIb9xUfg0Q29/2mgIR6Zr9krM7HjuIcCzFvDtr+L0GQjae9H0pRB2OO
62cECs5HKhT5DZ98K33vmWiLowc621dQuwKWSQKjWf50XYFw42h21P2KXUGyp2y/
+aEyZ+uVgLLQbRA1dEjSDZ2iGRy12Mk5gpYc397aYp438fsJoHIgJ2lgMv5h7WY9
t6N/byY9Nw9p21Og3AoXSL2q/2IJ1WRUhebgAdGVMlV1fkuOQoEzR7EdpqtQD9Cs
5+bfo3Nhmcyvk5ftB0WkJ9z6bNZ7yxrP8wIDAQAB
-----END RSA PUBLIC KEY-----
""",
    "tdlib-test": b"""-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAyMEdY1aR+sCR3ZSJrtztKTKqigvO/vBfqACJLZtS7QMgCGXJ6XIR
yy7mx66W0/sOFa7/1mAZtEoIokDP3ShoqF4fVNb6XeqgQfaUHd8wJpDWHcR2OFwv
plUUI1PLTktZ9uW2WE23b+ixNwJjJGwBDJPQEQFBE+vfmH0JP503wr5INS1poWg/
j25sIWeYPHYeOrFp/eXaqhISP6G+q2IeTaWTXpwZj4LzXq5YOpk4bYEQ6mvRq7D1
aHWfYmlEGepfaYR8Q0YqvvhYtMte3ITnuSJs171+GDqpdKcSwHnd6FudwGO4pcCO
j4WcDuXc2CTHgH8gFTNhp/Y8/SpDOhvn9QIDAQAB
-----END RSA PUBLIC KEY-----
""",
    "tdesktop-1": b"""-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAwVACPi9w23mF3tBkdZz+zwrzKOaaQdr01vAbU4E1pvkfj4sqDsm6
lyDONS789sVoD/xCS9Y0hkkC3gtL1tSfTlgCMOOul9lcixlEKzwKENj1Yz/s7daS
an9tqw3bfUV/nqgbhGX81v/+7RFAEd+RwFnK7a+XYl9sluzHRyVVaTTveB2GazTw
Efzk2DWgkBluml8OREmvfraX3bkHZJTKX4EQSjBbbdJ2ZXIsRrYOXfaA+xayEGB+
8hdlLmAjbCVfaigxX0CDqWeR1yFL9kwd9P0NsZRPsmoqVwMbMu7mStFai6aIhc3n
Slv8kg9qv1m6XHVQY3PnEw+QQtqSIXklHwIDAQAB
-----END RSA PUBLIC KEY-----
""",
    "tdesktop-2": b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAruw2yP/BCcsJliRoW5eB
VBVle9dtjJw+OYED160Wybum9SXtBBLXriwt4rROd9csv0t0OHCaTmRqBcQ0J8fx
hN6/cpR1GWgOZRUAiQxoMnlt0R93LCX/j1dnVa/gVbCjdSxpbrfY2g2L4frzjJvd
l84Kd9ORYjDEAyFnEA7dD556OptgLQQ2e2iVNq8NZLYTzLp5YpOdO1doK+ttrltg
gTCy5SrKeLoCPPbOgGsdxJxyz5KKcZnSLj16yE5HvJQn0CNpRdENvRUXe6tBP78O
39oJ8BTHp9oIjd6XWXAsp2CvK45Ol8wFXGF710w9lwCGNbmNxNYhtIkdqfsEcwR5
JwIDAQAB
-----END PUBLIC KEY-----
""",
    "tdesktop-3": b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvfLHfYH2r9R70w8prHbl
Wt/nDkh+XkgpflqQVcnAfSuTtO05lNPspQmL8Y2XjVT4t8cT6xAkdgfmmvnvRPOO
KPi0OfJXoRVylFzAQG/j83u5K3kRLbae7fLccVhKZhY46lvsueI1hQdLgNV9n1cQ
3TDS2pQOCtovG4eDl9wacrXOJTG2990VjgnIKNA0UMoP+KF03qzryqIt3oTvZq03
DyWdGK+AZjgBLaDKSnC6qD2cFY81UryRWOab8zKkWAnhw2kFpcqhI0jdV5QaSCEx
vnsjVaX0Y1N0870931/5Jb9ICe4nweZ9kSDF/gip3kWLG0o8XQpChDfyvsqB9OLV
/wIDAQAB
-----END PUBLIC KEY-----
""",
    "tdesktop-4": b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs/ditzm+mPND6xkhzwFI
z6J/968CtkcSE/7Z2qAJiXbmZ3UDJPGrzqTDHkO30R8VeRM/Kz2f4nR05GIFiITl
4bEjvpy7xqRDspJcCFIOcyXm8abVDhF+th6knSU0yLtNKuQVP6voMrnt9MV1X92L
GZQLgdHZbPQz0Z5qIpaKhdyA8DEvWWvSUwwc+yi1/gGaybwlzZwqXYoPOhwMebzK
Uk0xW14htcJrRrq+PXXQbRzTMynseCoPIoke0dtCodbA3qQxQovE16q9zz4Otv2k
4j63cz53J+mhkVWAeWxVGI0lltJmWtEYK6er8VqqWot3nqmWMXogrgRLggv/Nbbo
oQIDAQAB
-----END PUBLIC KEY-----
""",
    "tdesktop-5": b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvmpxVY7ld/8DAjz6F6q0
5shjg8/4p6047bn6/m8yPy1RBsvIyvuDuGnP/RzPEhzXQ9UJ5Ynmh2XJZgHoE9xb
nfxL5BXHplJhMtADXKM9bWB11PU1Eioc3+AXBB8QiNFBn2XI5UkO5hPhbb9mJpjA
9Uhw8EdfqJP8QetVsI/xrCEbwEXe0xvifRLJbY08/Gp66KpQvy7g8w7VB8wlgePe
xW3pT13Ap6vuC+mQuJPyiHvSxjEKHgqePji9NP3tJUFQjcECqcm0yV7/2d0t/pbC
m+ZH1sadZspQCEPPrtbkQBlvHb4OLiIWPGHKSMeRFvp3IWcmdJqXahxLCUS1Eh6M
AQIDAQAB
-----END PUBLIC KEY-----
""",
}


def _tl_bytes(data: bytes) -> bytes:
    """A TL `bytes` value: a 1-byte length (or 0xfe and 3 bytes) and the data, padded to 4."""
    prefix = bytes([len(data)]) if len(data) < 254 else b"\xfe" + len(data).to_bytes(3, "little")
    out = prefix + data
    return out + bytes(-len(out) % 4)


def reference_fingerprint(pem: bytes) -> str:
    """The MTProto key fingerprint (https://core.telegram.org/mtproto/auth_key): the lower 64
    bits of SHA1 of the bare TL object rsa_public_key n:bytes e:bytes, as a little-endian
    number, in hex."""
    key = load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    numbers = key.public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    digest = hashlib.sha1(_tl_bytes(n) + _tl_bytes(e)).digest()
    return f"{int.from_bytes(digest[12:20], 'little'):016x}"


# --- a raw client: any bytes an official client might send, and what came back -------------

#: inner framing tags inside an obfuscated2 header (TDLib uses ee, Telegram Desktop ef)
INNER_TAGS = {"abridged": b"\xef" * 4, "intermediate": b"\xee" * 4, "padded": b"\xdd" * 4}


def frame(inner: str, packet: bytes) -> bytes:
    """`packet` with its transport length prefix."""
    if inner == "abridged":
        quarter = len(packet) // 4
        prefix = bytes([quarter]) if quarter < 0x7F else b"\x7f" + quarter.to_bytes(3, "little")
        return prefix + packet
    return struct.pack("<I", len(packet)) + packet


def unencrypted_message(message_id: int, body: bytes, padding: bytes = b"", **fields: int) -> bytes:
    """auth_key_id | message_id (unsigned) | message_data_length | body | padding. `fields` may
    override auth_key_id and message_data_length to build malformed messages."""
    auth_key_id = fields.get("auth_key_id", 0)
    length = fields.get("length", len(body) + len(padding))
    return struct.pack("<QQI", auth_key_id, message_id, length) + body + padding


async def raw_exchange(
    port: int,
    transport: str,
    packet: bytes,
    *,
    obfuscated: bool = False,
    header: bytes | None = None,
    dc: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 2.0,
) -> bytes:
    """Send `packet` (an unencrypted MTProto message) as the first packet over `transport`
    (abridged | intermediate | padded), optionally inside obfuscated2; return every byte the
    server sent (decrypted) until it closed the connection or `timeout` passed."""
    marker = {"abridged": b"\xef", "intermediate": b"\xee" * 4, "padded": b"\xdd" * 4}
    framed = frame(transport, packet)
    decryptor: ReferenceCTR | None = None
    if obfuscated:
        assert header is not None and len(header) == 64
        wire, decryptor = reference_obfuscated2(header, INNER_TAGS[transport], framed, dc)
    else:
        wire = marker[transport] + framed
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    try:
        writer.write(wire)
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(4096):
                    received += chunk
    finally:
        writer.close()
    return decryptor.apply(received) if decryptor is not None else received
