"""Data usage: bytes sent and received by one default round over the bundled lists.

The default round is `probe run` without options: no --resolver (the system resolver), no
control server, so it also asks a DNS-over-HTTPS resolver for every name (the DNS-only control,
probe/round/doh_fallback.py) and learns its public address from STUN servers and HTTPS echo
pages (probe/vantage/publicip). All of it runs against loopback stand-ins inside a private
network namespace, found under their real names: the probe runs in a mount namespace of its own
whose /etc/resolv.conf names our DNS server (127.0.0.1) and whose /etc/hosts holds only
localhost, as the lab does (tests/lab/topology.py), and our DNS server answers the names of the
DoH resolvers (dns.PUBLIC_DOH_URLS), of the STUN servers and of the echo pages (the publicip
defaults) with stand-in addresses. Nothing is sent anywhere else: the namespace has no other
interface.

The bundled lists (targets/*.toml, loaded with probe.targets.load_lists) are copied with every
endpoint replaced by a stand-in: each host name resolves (through our DNS server) to its own
127.2.x.y address, each IP literal (Telegram's data centres, IPv6 ones included) is rewritten to
its own 127.3.x.y address. Stand-ins: HTTPS/HTTP sites that serve a realistically large page
(default 400 KB, a typical front page), plain TCP listeners for `tcp` targets, the fake data
centre for `mtproto` targets (bench/world.py); a DoH server (RFC 8484 POST over HTTP/2, or
HTTP/1.1 keep-alive with --doh-http1, answers from the same zone), STUN responders and HTTPS
echo pages (here, in a thread). Certificates: a trustme root, an intermediate and one leaf for
every name, so that a handshake carries a chain (leaf + intermediate) as real servers send; the
root is given with --ca-file, which the DoH client trusts too (a tree before c745319 measured
with --base read only SSL_CERT_FILE for DoH: it gets that as well).

Figures: what the probe counts (`--json` bytes_sent/bytes_received: the TCP and UDP payload
of its own sockets), what crossed the namespace's loopback interface (every packet once, IP and
TCP headers included, MTU 1500 like an Ethernet or Wi-Fi link), which also counts what a server
pushed that the probe never read (it closes the connection at the body cap) and what the probe
does not count, and the wire bytes per part of the round (nftables counters by address: DoH,
address discovery, plain DNS, the web pages, the other targets).

    sudo .venv/bin/python bench/data_usage.py [--page-kb 400] [--gzip] [--body-cap N]
        [--no-control] [--base DIR]

`--no-control` measures `probe run --no-control` instead (no DoH comparison), for comparison;
`--base DIR` the `probe` package in DIR (put first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import benchlib
import wire_parts
import world  # puts the repository first on sys.path (tests.*)

from probe.addresses import is_ip_literal
from probe.steps import dns
from probe.targets import bundled_list_paths, load_lists
from probe.vantage import publicip
from tests.lab.volunteer_servers import StunResponder, echo

GOAL_BYTES = 1_000_000
#: the stand-ins of the round's other parties, each kind in its own /24 (nftables counts by it)
DOH_NET = "127.5.1"
STUN_NET = "127.5.2"
ECHO_NET = "127.5.3"
#: what a public DoH server adds to each answer (about what dns.google sends over HTTP/1.1)
DOH_REPLY_HEADERS = (
    "Content-Type: application/dns-message\r\n"
    "Date: Sat, 28 Nov 2026 12:00:00 GMT\r\n"
    "Expires: Sat, 28 Nov 2026 12:00:00 GMT\r\n"
    "Cache-Control: private, max-age=300\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Server: HTTP server (unknown)\r\n"
    "X-XSS-Protection: 0\r\n"
    "X-Frame-Options: SAMEORIGIN\r\n"
    'Alt-Svc: h3=":443"; ma=2592000,h3-29=":443"; ma=2592000\r\n'
)
REQUEST_TIMEOUT = 30.0
MAX_HEAD = 65536
MAX_QUERY = 65535


# --- the world ------------------------------------------------------------------------------


def others() -> dict[str, dict[str, Any]]:
    """The names the default round contacts besides its targets, with their stand-ins."""
    found: dict[str, dict[str, Any]] = {}
    for n, url in enumerate(dns.PUBLIC_DOH_URLS):
        host = urlsplit(url).hostname or ""
        found[host] = {"kind": "doh", "address": f"{DOH_NET}.{n + 1}", "port": 443}
    for n, (host, port) in enumerate(publicip.DEFAULT_STUN_SERVERS):
        found[host] = {"kind": "stun", "address": f"{STUN_NET}.{n + 1}", "port": port}
    for n, url in enumerate(publicip.DEFAULT_ECHO_URLS):
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host.startswith("api6."):
            continue  # an IPv6-only page (AAAA only): this IPv4 stand-in world has no answer
        found[host] = {"kind": "echo", "address": f"{ECHO_NET}.{n + 1}", "port": parts.port or 443}
    return found


def make_pki(names: list[str], directory: Path) -> benchlib.PKIFiles:
    """A root, an intermediate and one leaf for `names`; the server sends leaf + intermediate."""
    import trustme

    root = trustme.CA(organization_name="probe bench root")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(*names)
    ca_path = directory / "bench-ca.pem"
    server_path = directory / "bench-server.pem"
    root.cert_pem.write_to_path(str(ca_path))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return benchlib.PKIFiles(str(ca_path), str(server_path))


def build(
    work: Path, page_bytes: int, gzipped: bool
) -> tuple[dict[str, Any], list[str], benchlib.PKIFiles, dict[str, int]]:
    loaded = load_lists(bundled_list_paths())
    if loaded.problems:
        raise SystemExit("bundled lists: " + "; ".join(loaded.problems))
    names: dict[str, str] = {}
    literals: dict[str, str] = {}
    listeners: dict[tuple[str, int], str] = {}  # (ip, port) -> kind
    tls_names: set[str] = set()
    counts = {"targets": 0, "ipv6_literals_mapped_to_ipv4": 0}
    lists = []
    for target_list in loaded.lists:
        rows = []
        for target in target_list.targets:
            counts["targets"] += 1
            definition = target.table_as_written()
            host = target.hostname
            if is_ip_literal(host):
                if ":" in host:
                    counts["ipv6_literals_mapped_to_ipv4"] += 1
                address = literals.setdefault(host, benchlib.address_for(len(literals), (127, 3)))
                definition["host"] = address
            else:
                address = names.setdefault(host, benchlib.address_for(len(names), (127, 2)))
            if target.check in ("https", "tls"):
                tls_names.add(target.sni or host)
            kind = {
                "https": "https",
                "tls": "https",
                "http": "http",
                "tcp": "tcp",
                "mtproto": "mtproto",
            }.get(target.check)
            if kind is not None:
                for port in target.endpoint_ports():
                    listeners.setdefault((address, port), kind)
            rows.append(definition)
            if target.ca:
                shutil.copy(target.ca, work / Path(target.ca).name)
        lists.append(
            benchlib.write_list(
                work / f"{target_list.name}.toml",
                target_list.name,
                rows,
                updated=target_list.updated.isoformat(),
            )
        )
    extra = others()
    clash = set(extra) & set(names)
    if clash:
        raise SystemExit(f"a target has the name of a DoH/STUN/echo server: {sorted(clash)}")
    tls_names.update(host for host, other in extra.items() if other["kind"] != "stun")
    pki = make_pki(sorted(tls_names), work)
    mtproto_hosts: dict[str, list[int]] = {}
    pages, tcp = [], []
    for (address, port), kind in sorted(listeners.items()):
        if kind == "mtproto":
            mtproto_hosts.setdefault(address, []).append(port)
        elif kind == "tcp":
            tcp.append({"host": address, "port": port})
        else:
            pages.append(
                {
                    "host": address,
                    "port": port,
                    "tls": kind == "https",
                    "page_bytes": page_bytes,
                    "gzip": gzipped,
                }
            )
    zone = {n: [a] for n, a in names.items()}
    zone.update({host: [other["address"]] for host, other in extra.items()})
    spec = {
        "dns": {"host": "127.0.0.1", "port": 53, "zone": zone},
        "tls_pem": pki.server_pem,
        "pages": pages,
        "tcp": tcp,
        "mtproto": [{"host": h, "ports": p} for h, p in mtproto_hosts.items()],
        "others": extra,
    }
    counts.update(
        names=len(names),
        ip_literals=len(literals),
        pages=len(pages),
        tcp_listeners=len(tcp),
        mtproto_ports=sum(map(len, mtproto_hosts.values())),
        doh_servers=sum(o["kind"] == "doh" for o in extra.values()),
        stun_servers=sum(o["kind"] == "stun" for o in extra.values()),
        echo_pages=sum(o["kind"] == "echo" for o in extra.values()),
    )
    return spec, lists, pki, counts


# --- the stand-ins of the round's other parties (in a thread of this process) ----------------


async def serve_doh(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, zone: world.ZoneDNS
) -> None:
    """RFC 8484 POST over HTTP/1.1 with keep-alive, answered from the world's zone."""
    try:
        while True:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD:
                    return
                match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                length = int(match.group(1)) if match else 0
                if not 0 < length <= MAX_QUERY:
                    return
                answer = zone.answer(await reader.readexactly(length))
            if answer is None:
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\n"
                + DOH_REPLY_HEADERS.encode()
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, TimeoutError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve_doh_h2(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, zone: world.ZoneDNS
) -> None:
    """RFC 8484 POST over HTTP/2 (what dns.google and cloudflare-dns.com agree to), with the
    same response headers as over HTTP/1.1 (HPACK indexes them after the first reply)."""
    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    connection = h2.connection.H2Connection(config=config)
    connection.initiate_connection()
    writer.write(connection.data_to_send())
    headers = [
        tuple(line.split(": ", 1)) for line in DOH_REPLY_HEADERS.lower().strip().split("\r\n")
    ]
    bodies: dict[int, bytearray] = {}
    try:
        while True:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                data = await reader.read(65536)
            if not data:
                return
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    bodies[event.stream_id] = bytearray()
                elif isinstance(event, h2.events.DataReceived):
                    bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    answer = zone.answer(bytes(bodies.pop(event.stream_id, b"")))
                    if answer is None:
                        continue
                    connection.send_headers(
                        event.stream_id,
                        [(":status", "200"), *headers, ("content-length", str(len(answer)))],
                    )
                    connection.send_data(event.stream_id, answer, end_stream=True)
            writer.write(connection.data_to_send())
            await writer.drain()
    except (OSError, TimeoutError, h2.exceptions.ProtocolError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve_others(spec: dict[str, Any], ready: threading.Event, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(spec["tls_pem"])
    context.set_alpn_protocols(["http/1.1"])
    doh_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    doh_context.load_cert_chain(spec["tls_pem"])
    doh_context.set_alpn_protocols(["h2", "http/1.1"] if spec["doh_h2"] else ["http/1.1"])
    zone = world.ZoneDNS(spec["dns"]["zone"])

    async def doh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            await serve_doh_h2(reader, writer, zone)
        else:
            await serve_doh(reader, writer, zone)

    closing: list[Any] = []
    for other in spec["others"].values():
        where = (other["address"], other["port"])
        if other["kind"] == "stun":
            transport, _ = await loop.create_datagram_endpoint(StunResponder, local_addr=where)
            closing.append(transport)
        else:
            if other["kind"] == "echo":
                closing.append(await asyncio.start_server(echo, *where, ssl=context))
            else:
                closing.append(await asyncio.start_server(doh, *where, ssl=doh_context))
    ready.set()
    await stop.wait()
    for item in closing:
        item.close()


@contextlib.contextmanager
def other_parties(spec: dict[str, Any]) -> Iterator[None]:
    """The DoH, STUN and echo stand-ins, served by a thread while the block runs."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = asyncio.Event()
        await serve_others(spec, ready, holder["stop"])

    def run() -> None:
        try:
            asyncio.run(main())
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30) or "stop" not in holder:
        raise SystemExit("the DoH/STUN/echo stand-ins did not start")
    try:
        yield
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


# --- counting -------------------------------------------------------------------------------

PARTS = {
    "doh": [f"ip daddr {DOH_NET}.0/24", f"ip saddr {DOH_NET}.0/24"],
    "address_discovery": [
        f"ip daddr {{ {STUN_NET}.0/24, {ECHO_NET}.0/24 }}",
        f"ip saddr {{ {STUN_NET}.0/24, {ECHO_NET}.0/24 }}",
    ],
    "dns": ["ip daddr 127.0.0.1 udp dport 53", "ip saddr 127.0.0.1 udp sport 53"],
}


def count_parts(pages: list[dict[str, Any]]) -> bool:
    """nftables counters of the wire bytes (IP packets) of each part of the round, and of the
    connections to the DoH stand-ins."""
    if shutil.which("nft") is None:
        return False
    parts = dict(PARTS)
    if pages:
        endpoints = ", ".join(f"{p['host']} . {p['port']}" for p in pages)
        parts["web_pages"] = [
            f"ip daddr . tcp dport {{ {endpoints} }}",
            f"ip saddr . tcp sport {{ {endpoints} }}",
        ]
    rules = ["table inet pbench_data {"]
    rules += [f"  counter {name} {{ }}" for name in (*parts, "doh_connections")]
    rules.append("  chain out { type filter hook output priority 0; policy accept;")
    for name, matches in parts.items():
        rules += [f"    {match} counter name {name}" for match in matches]
    rules.append(
        f"    ip daddr {DOH_NET}.0/24 tcp flags & (syn | ack) == syn counter name doh_connections"
    )
    rules += ["  }", "}"]
    done = subprocess.run(["nft", "-f", "-"], input="\n".join(rules), text=True, check=False)
    return done.returncode == 0


def sniff_parts(pages: list[dict[str, Any]]) -> wire_parts.WireParts:
    """The same parts as `count_parts`, counted by a packet socket (used where nftables is
    missing), and the bytes of each page's server."""
    doh, stun, echo = (wire_parts.in_net(f"{n}.0/24") for n in (DOH_NET, STUN_NET, ECHO_NET))
    endpoints = {(p["host"], p["port"]) for p in pages}
    return wire_parts.WireParts(
        {
            "doh": lambda s, d, proto, sp, dp: doh(s) or doh(d),
            "address_discovery": lambda s, d, proto, sp, dp: (
                stun(s) or stun(d) or echo(s) or echo(d)
            ),
            "dns": lambda s, d, proto, sp, dp: (
                proto == 17 and ((d == "127.0.0.1" and dp == 53) or (s == "127.0.0.1" and sp == 53))
            ),
            "web_pages": lambda s, d, proto, sp, dp: (
                proto == 6 and ((d, dp) in endpoints or (s, sp) in endpoints)
            ),
        },
        endpoints,
    )


def read_parts() -> dict[str, int]:
    """Bytes per part, and `doh_connections` (SYN packets)."""
    listing = subprocess.run(
        ["nft", "-j", "list", "counters", "table", "inet", "pbench_data"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for item in json.loads(listing)["nftables"]:
        counter = item.get("counter")
        if counter:
            unit = "packets" if counter["name"] == "doh_connections" else "bytes"
            found[counter["name"]] = int(counter[unit])
    return found


def in_own_etc(work: Path, argv: list[str]) -> list[str]:
    """`argv` in a mount namespace of its own whose resolv.conf names our DNS server and
    whose hosts file holds only localhost (the lab's way, without touching /etc)."""
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1\n")
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
    script = (
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
    )
    return [
        "unshare", "--mount", "--propagation", "private",
        "sh", "-c", script, "sh", str(resolv), str(hosts), *argv,
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-kb", type=int, default=400, help="size of every stand-in page")
    parser.add_argument("--body-cap", type=int, help="passed to probe run (default: its own)")
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="pages served gzip-compressed (as real sites do) when asked for",
    )
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="measure `probe run --no-control` (no DoH comparison) instead of the default round",
    )
    parser.add_argument("--base", help="directory holding another `probe` package to measure")
    parser.add_argument(
        "--doh-http1",
        action="store_true",
        help="DoH stand-ins that speak only HTTP/1.1 (by default they agree to h2, as the "
        "public resolvers do)",
    )
    args = parser.parse_args()
    benchlib.isolate(lo_mtu=1500)
    print(benchlib.describe_machine())
    work = Path(tempfile.mkdtemp(prefix="pbench-data-"))
    spec, lists, pki, counts = build(work, args.page_kb * 1000, args.gzip)
    spec["doh_h2"] = not args.doh_http1
    served = "gzip-compressed when asked for" if args.gzip else "uncompressed"
    print(f"stand-ins: {json.dumps(counts)}; every page {args.page_kb} KB, {served}")
    options = ["--ca-file", pki.ca_pem, "--out", str(work / "results"), "--json"]
    if args.no_control:
        options.append("--no-control")
    if args.body_cap:
        options += ["--body-cap", str(args.body_cap)]
    command = in_own_etc(work, benchlib.probe_command(*lists, *options))
    env = dict(os.environ)
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    if args.base:
        env["SSL_CERT_FILE"] = pki.ca_pem  # older trees: httpx's DoH client read only this
        # PYTHONSAFEPATH: `python -m` would put the working directory first, before PYTHONPATH
        env.update(PYTHONPATH=os.path.abspath(args.base), PYTHONSAFEPATH="1")
        print(f"measuring the probe package in {args.base}")
    counting = count_parts(spec["pages"])
    sniffer = sniff_parts(spec["pages"])  # bytes per page, and the parts without nftables
    with benchlib.world(spec), other_parties(spec):
        before = benchlib.lo_bytes()
        with sniffer:
            measured = benchlib.run_measured(command, timeout=300, env=env)
        wire = benchlib.lo_bytes() - before
    parts = read_parts() if counting else dict(sniffer.parts, doh_connections=sniffer.syns["doh"])
    if not counting or sniffer.drops:
        print(f"packet socket (per page{'' if counting else ', parts'}): {sniffer.drops} missed")
    per_page = sorted(sniffer.endpoints.values())
    if per_page:
        print(
            f"web pages on the wire, each (B): min {per_page[0]:,}, median "
            f"{statistics.median(per_page):,.0f}, max {per_page[-1]:,}: {per_page}"
        )
    doh_connections = parts.pop("doh_connections", None)
    if parts:
        parts["other_targets_and_rest"] = wire - sum(parts.values())
    benchlib.check_ok(measured, "probe run")
    summary = measured.json_lines()[-1]
    statuses: dict[str, int] = {}
    for row in summary["services"]:
        for status, n in row["counts"].items():
            statuses[status] = statuses.get(status, 0) + n
    counted = summary["bytes_sent"] + summary["bytes_received"]
    records = [
        json.loads(line)
        for line in Path(summary["results_file"]).read_text().splitlines()
        if line.strip()
    ]
    with_doh = sum(1 for r in records if r["test_keys"].get("x_doh"))
    round_kind = "probe run --no-control" if args.no_control else "probe run (default round)"
    print(
        f"{round_kind}: targets {summary['targets']}: {statuses}; round {summary['runtime']:.1f} s"
    )
    print(
        f"records with a DoH comparison (x_doh): {with_doh}; control_failure "
        f"{summary['control_failure']!r}; address learned {summary['address_learned']}"
    )
    print(
        f"probe counted: sent {summary['bytes_sent']:,} B, received "
        f"{summary['bytes_received']:,} B, total {counted:,} B"
    )
    print(f"loopback wire (headers included, MTU 1500): {wire:,} B")
    if parts:
        print("wire by part (IP packets): " + ", ".join(f"{k} {v:,} B" for k, v in parts.items()))
        print(f"DoH connections (TLS over TCP): {doh_connections}")
    print(
        json.dumps(
            {
                "round": "no-control" if args.no_control else "default",
                "page_kb": args.page_kb,
                "gzip": args.gzip,
                "body_cap": args.body_cap,
                "base": args.base,
                "doh_h2": spec["doh_h2"],
                "counts": counts,
                "statuses": statuses,
                "records_with_doh": with_doh,
                "bytes_sent": summary["bytes_sent"],
                "bytes_received": summary["bytes_received"],
                "wire_bytes": wire,
                "wire_parts": parts,
                "doh_connections": doh_connections,
            }
        )
    )
    goal = "met" if wire < GOAL_BYTES else "MISSED"
    doh = f", of which DoH {parts['doh'] / 1e3:.0f} kB" if "doh" in parts else ""
    benchlib.summary_line(
        "data_usage",
        f"{round_kind}, {summary['targets']} targets, {args.page_kb} KB pages ({served}"
        f"{f', --body-cap {args.body_cap}' if args.body_cap else ''}): wire "
        f"{wire / 1e6:.2f} MB{doh}; probe counted {counted / 1e6:.2f} MB (sent "
        f"{summary['bytes_sent'] / 1e3:.0f} kB); goal < 1 MB on the wire {goal}",
    )


if __name__ == "__main__":
    main()
