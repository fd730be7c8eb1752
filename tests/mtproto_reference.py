"""A deliberately simple second implementation of obfuscated2, used only by the tests.

It follows the protocol text (FACTS.md §2, Telegram's "Transport obfuscation" page) step by step
and shares no code with `probe.mtproto`: AES-256-CTR is built here from the AES block function
(`cryptography`'s AES in ECB mode, one 16-byte block at a time) and a hand-rolled 128-bit
big-endian counter, so a mistake in how probe.mtproto drives the library's CTR mode (wrong IV,
wrong direction, keystream not continued after the header) shows up as different bytes.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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
    random_header: bytes, tag: bytes, first_packet: bytes
) -> tuple[bytes, ReferenceCTR]:
    """What a client sends for `first_packet` (already framed) after `random_header`.

    Returns the wire bytes and the cipher that decrypts the server's reply.

    1. Take 64 random bytes (the caller checked the forbidden prefixes).
    2. Put the transport tag in bytes 56..59.
    3. The client's sending key is bytes 8..39 and its IV bytes 40..55.
    4. Reverse bytes 8..55: the first 32 of the reversed run are the receiving key, the next 16
       the receiving IV.
    5. Encrypt the whole 64-byte header with the sending cipher; send bytes 0..55 as they were
       and bytes 56..63 in their encrypted form.
    6. Keep encrypting with the same cipher (its keystream continues at offset 64) for all data.
    """
    header = bytearray(random_header)
    header[56:60] = tag
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
