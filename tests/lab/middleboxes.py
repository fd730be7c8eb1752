"""The censor's user-space middleboxes, for the rules that must look inside the payload.

Run inside the `censor` namespace: ``python -m tests.lab.middleboxes CONFIG.json``. nftables steers
the client's traffic here (censor.py writes those rules):

- **DNS injector** (UDP, via TPROXY so the original destination is kept): a query for a listed
  name is answered at once with a forged reply from the original destination's address (an
  address such as 10.10.34.36, or NXDOMAIN). With ``race`` the query is also forwarded and the
  genuine reply relayed afterwards, as an on-path injector's forged packet beats the real one;
  without it the genuine reply never arrives. Other queries are forwarded untouched, to the
  address they were sent to (a query to an address that runs no DNS server gets no answer).
- **Transparent TCP proxy** (via REDIRECT; SO_ORIGINAL_DST recovers the destination): reads the
  first bytes; a TLS ClientHello whose SNI is listed is reset (RST) or dropped (silence: bytes are
  read and discarded, nothing is ever answered); an HTTP request whose Host is listed gets Iran's
  403 blockpage (an iframe to 10.10.34.36) and the connection closes. Anything else is spliced to
  the original destination.

It prints READY on stdout once its sockets are bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import sys
import time
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20
HEAD_CAP = 16384
FIRST_BYTES_WAIT = 2.0
DROP_HOLD = 30.0
SPLICE_IDLE = 15.0
UPSTREAM_DNS_WAIT = 3.0
BLOCKPAGE = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    b"<title>M1-6\r\n</title></head><body><iframe "
    b'src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy " style="width: 100%; '
    b'height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" '
    b'vspace="0" hspace="0"></iframe></body></html>'
)


def _name_listed(name: str, names: list[str]) -> bool:
    """Exact names; a listed "*.example.org" matches every name under example.org."""
    name = name.rstrip(".").lower()
    return any(
        name.endswith(listed[1:]) if listed.startswith("*.") else name == listed for listed in names
    )


# --- DNS ------------------------------------------------------------------------------------
class DNSInjector:
    def __init__(self, config: dict[str, Any], port: int) -> None:
        self.names: list[str] = [n.lower() for n in config["names"]]
        self.answer: str = config["answer"]  # an IPv4 address, or "NXDOMAIN"
        self.race: bool = config.get("race", False)
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        self.sock.setsockopt(socket.SOL_IP, IP_RECVORIGDSTADDR, 1)
        self.sock.setblocking(False)
        self.sock.bind(("0.0.0.0", port))
        self.loop.add_reader(self.sock, self._on_query)

    def _on_query(self) -> None:
        try:
            data, ancdata, _, client = self.sock.recvmsg(4096, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return
        original = None
        for level, kind, value in ancdata:
            if level == socket.SOL_IP and kind == IP_RECVORIGDSTADDR:
                port, raw_ip = struct.unpack("!2xH4s8x", value[:16])
                original = (socket.inet_ntoa(raw_ip), port)
        if original is None:
            return
        try:
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
        except Exception:
            query, name = None, ""
        if query is not None and _name_listed(name, self.names):
            self._send_as(original, client, self._forged(query))
            if not self.race:
                return
        self._forward(data, original, client)

    def _forged(self, query: dns.message.Message) -> bytes:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        if self.answer == "NXDOMAIN":
            reply.set_rcode(dns.rcode.NXDOMAIN)
        else:
            reply.answer.append(
                dns.rrset.from_text(query.question[0].name, 300, "IN", "A", self.answer)
            )
        return reply.to_wire()

    @staticmethod
    def _send_as(source: tuple[str, int], client: tuple[str, int], data: bytes) -> None:
        """Send a datagram that appears to come from `source` (the address the client asked)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoof:
            spoof.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            spoof.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            spoof.bind(source)
            spoof.sendto(data, client)

    def _forward(self, data: bytes, original: tuple[str, int], client: tuple[str, int]) -> None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.setblocking(False)

        def finish() -> None:
            self.loop.remove_reader(upstream)
            upstream.close()

        def on_reply() -> None:
            try:
                reply = upstream.recv(65536)
            except OSError:
                reply = b""
            timer.cancel()
            finish()
            if reply:
                self._send_as(original, client, reply)

        try:
            upstream.sendto(data, original)
        except OSError:
            upstream.close()
            return
        timer = self.loop.call_later(UPSTREAM_DNS_WAIT, finish)
        self.loop.add_reader(upstream, on_reply)


# --- TCP ------------------------------------------------------------------------------------
def client_hello_sni(data: bytes) -> str | None:
    """The server_name of a TLS ClientHello (None if absent or not yet complete)."""
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        pos = 9 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + data[pos]  # session id
        pos += 2 + struct.unpack("!H", data[pos : pos + 2])[0]  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = pos + 2 + struct.unpack("!H", data[pos : pos + 2])[0]
        pos += 2
        while pos + 4 <= end:
            kind, size = struct.unpack("!HH", data[pos : pos + 4])
            pos += 4
            if kind == 0:
                name_size = struct.unpack("!H", data[pos + 3 : pos + 5])[0]
                return data[pos + 5 : pos + 5 + name_size].decode("ascii", "replace").lower()
            pos += size
    except (IndexError, struct.error):
        return None
    return None


def tls_record_complete(data: bytes) -> bool:
    return len(data) >= 5 and len(data) >= 5 + struct.unpack("!H", data[3:5])[0]


def http_host(head: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"host":
            return value.strip().decode("latin-1").split(":")[0].lower()
    return None


class TransparentProxy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.sni_names: list[str] = [n.lower() for n in config.get("sni_names", [])]
        self.sni_action: str = config.get("sni_action", "reset")
        self.http_names: list[str] = [n.lower() for n in config.get("http_names", [])]
        #: every ClientHello to these addresses is reset, whatever its name (address filtering)
        self.tls_ips: set[str] = set(config.get("tls_ips", []))
        #: residual blocking: after a trigger, every connection of that client to that address
        #: and port is reset for this many seconds, whatever it sends
        self.residual = float(config.get("residual", 0.0))
        self.penalty: dict[tuple[str, str, int], float] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, raw_ip = struct.unpack("!2xH4s8x", raw)
            original = (socket.inet_ntoa(raw_ip), port)
            key = (str(writer.get_extra_info("peername")[0]), *original)
            if self.penalty.get(key, 0.0) > time.monotonic():
                verdict = "reset"  # residual blocking: not even read
            else:
                first = await self._first_bytes(reader)
                verdict = self._judge(first, original[0])
                if verdict in ("reset", "drop") and self.residual > 0:
                    self.penalty[key] = time.monotonic() + self.residual
            if verdict == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if verdict == "drop":
                async with asyncio.timeout(DROP_HOLD):
                    while await reader.read(65536):
                        pass
                return
            if verdict == "blockpage":
                writer.write(BLOCKPAGE)
                await writer.drain()
                return
            await self._splice(reader, writer, original, first)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _first_bytes(self, reader: asyncio.StreamReader) -> bytes:
        """Read until the ClientHello record or the HTTP head is complete (bounded)."""
        data = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_BYTES_WAIT):
                while len(data) < HEAD_CAP:
                    chunk = await reader.read(HEAD_CAP - len(data))
                    if not chunk:
                        break
                    data += chunk
                    if data[0] == 0x16 and not tls_record_complete(data):
                        continue
                    if data[:4] in (b"GET ", b"POST", b"HEAD") and b"\r\n\r\n" not in data:
                        continue
                    break
        return data

    def _judge(self, first: bytes, address: str) -> str:
        if first[:1] == b"\x16":
            if address in self.tls_ips:
                return "reset"
            sni = client_hello_sni(first)
            if sni is not None and _name_listed(sni, self.sni_names):
                return self.sni_action
        elif first[:4] in (b"GET ", b"POST", b"HEAD"):
            host = http_host(first)
            if host is not None and _name_listed(host, self.http_names):
                return "blockpage"
        return "pass"

    async def _splice(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        original: tuple[str, int],
        first: bytes,
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*original)
        up_writer.write(first)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while True:
                    async with asyncio.timeout(SPLICE_IDLE):
                        chunk = await source.read(65536)
                    if not chunk:
                        break
                    sink.write(chunk)
                    await sink.drain()
            finally:
                with contextlib.suppress(OSError):
                    if sink.can_write_eof():
                        sink.write_eof()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(pump(reader, up_writer))
                group.create_task(pump(up_reader, writer))
        except* (OSError, TimeoutError):
            pass
        finally:
            up_writer.close()


async def main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    injector = None
    server = None
    if config.get("dns"):
        injector = DNSInjector(config["dns"], config["dns_port"])
    if config.get("proxy"):
        proxy = TransparentProxy(config["proxy"])
        server = await asyncio.start_server(
            proxy.handle, "0.0.0.0", config["proxy_port"], reuse_address=True
        )
    print("READY", flush=True)
    await stop.wait()
    if server is not None:
        server.close()
    if injector is not None:
        loop.remove_reader(injector.sock)
        injector.sock.close()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as config_file:
        asyncio.run(main(json.load(config_file)))
