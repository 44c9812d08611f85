"""Fetch throughput: how close does the Fetcher get to its own concurrency bound?

N sources live on H local "hosts" (one port each on 127.0.0.1, because per-host limits
key on host name and port) served by a separate process that answers every request
after a fixed latency. With ``concurrency`` requests in flight and ``latency`` seconds
each, no client can beat ``concurrency / latency`` requests per second: that is the
bound. The server counts requests in flight per port, so the per-host limit is
checked where it matters, on the receiving end. robots.txt is on (one fetch per host,
counted as requests, as it would be in real life).

    .venv/bin/python bench/fetch.py --sources 1000 --latency 0.1 --concurrency 16 --hosts 12

The last line printed is one JSON object: requests_per_s, bound_per_s, ratio,
max_per_host, per_host_limit (plus the run's parameters).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from monitor.config import FetchConfig
from monitor.errors import FetchError
from monitor.fetch import Fetcher

BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>bench</title>'
    b"<item><title>one</title><link>http://example.org/1</link></item></channel></rss>"
)


# -- the server (own process, so it does not share the client's core and GIL) ----------------


def serve(hosts: int, latency: float, ready: Any) -> None:
    """Answer on ``hosts`` ports; GET /__stats on the first one returns peak concurrency."""
    current = [0] * hosts
    peak = [0] * hosts
    served = [0] * hosts
    active = {"now": 0, "peak": 0}

    async def handle(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/__stats":
                    body = json.dumps(
                        {"peak": peak, "served": served, "peak_total": active["peak"]}
                    ).encode()
                else:
                    current[index] += 1
                    active["now"] += 1
                    peak[index] = max(peak[index], current[index])
                    active["peak"] = max(active["peak"], active["now"])
                    try:
                        await asyncio.sleep(latency)
                    finally:
                        current[index] -= 1
                        active["now"] -= 1
                    served[index] += 1
                    body = b"User-agent: *\nAllow: /\n" if path == "/robots.txt" else BODY
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml; charset=utf-8\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = []
        for index in range(hosts):
            server = await asyncio.start_server(
                lambda r, w, i=index: handle(i, r, w), "127.0.0.1", 0, backlog=1024
            )
            servers.append(server)
        ready.send([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.Event().wait()  # until the parent terminates us

    asyncio.run(main())


# -- the client -------------------------------------------------------------------------------


async def run_client(urls: list[str], settings: FetchConfig) -> tuple[float, int, int]:
    failures = 0
    async with Fetcher(settings) as fetcher:

        async def one(url: str) -> None:
            nonlocal failures
            try:
                await fetcher.get(url)
            except FetchError:
                failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(url) for url in urls))
        elapsed = time.perf_counter() - start
    return elapsed, len(urls), failures


async def run_raw_client(urls: list[str], workers: int) -> float:
    """The machine's own ceiling right now: bare sockets, no limits, no parsing.

    On a shared machine the scheduler's wake-up delays add to every request; this
    client pays them too, so its ratio says how much of the gap is the machine's.
    """
    queue: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()
    for url in urls:
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        queue.put_nowait((hostport.split(":")[0], int(hostport.split(":")[1]), "/" + path))

    async def worker() -> None:
        connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        while not queue.empty():
            host, port, path = queue.get_nowait()
            if port not in connections:
                connections[port] = await asyncio.open_connection(host, port)
            reader, writer = connections[port]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        for _reader, writer in connections.values():
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=1000, help="sources (one URL each)")
    parser.add_argument(
        "--hosts",
        type=int,
        default=12,
        help="distinct hosts (ports); hosts x per-host just above concurrency keeps every"
        " host's limit under pressure without making it the bottleneck",
    )
    parser.add_argument("--latency", type=float, default=0.1, help="server latency, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="fetch.concurrency")
    parser.add_argument("--per-host", type=int, default=2, help="fetch.per_host")
    parser.add_argument("--min-delay", type=float, default=0.0, help="fetch.min_delay")
    parser.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip the bare-socket run that measures the machine's own ceiling",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.sources <= 100_000 and 1 <= args.hosts <= 2000):
        parser.error("keep --sources <= 100000 and --hosts <= 2000 (loopback only, bounded)")

    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=serve, args=(args.hosts, args.latency, send), daemon=True
    )
    server.start()
    try:
        if not receive.poll(30):
            raise SystemExit("the bench server did not start")
        ports: list[int] = receive.recv()
        urls = [
            f"http://127.0.0.1:{ports[i % args.hosts]}/source/{i}.xml" for i in range(args.sources)
        ]
        settings = FetchConfig(
            concurrency=args.concurrency,
            per_host=args.per_host,
            min_delay=args.min_delay,
            allowed_networks=["127.0.0.1/32"],
            connect_timeout=10,
            read_timeout=30,
            total_timeout=60,
        )
        cpu_before = time.process_time()
        elapsed, fetched, failures = asyncio.run(run_client(urls, settings))
        client_cpu = time.process_time() - cpu_before
        stats = httpx.get(f"http://127.0.0.1:{ports[0]}/__stats", timeout=10).json()
        raw_elapsed = None
        if not args.no_calibrate:
            raw_elapsed = asyncio.run(run_raw_client(urls, args.concurrency))
    finally:
        server.terminate()
        server.join(5)

    requests = sum(stats["served"])  # pages plus one robots.txt per host
    requests_per_s = requests / elapsed
    # Other ceilings: every host busy at per_host, and min_delay spacing per host.
    bound = args.concurrency / args.latency
    host_bound = args.hosts * args.per_host / args.latency
    if args.min_delay > 0:
        host_bound = min(host_bound, args.hosts / args.min_delay)
    if host_bound < bound:
        print(f"note: hosts x per_host limit the rate to {host_bound:.0f}/s, below the bound")
    max_per_host = max(stats["peak"])
    print(f"sources {args.sources} on {args.hosts} hosts, latency {args.latency * 1000:.0f} ms")
    print(f"requests       {requests} ({fetched} pages + robots.txt), failures {failures}")
    print(f"elapsed        {elapsed:.2f} s")
    print(f"achieved       {requests_per_s:.1f} requests/s")
    print(f"bound          {bound:.1f} requests/s (concurrency {args.concurrency} / latency)")
    print(f"ratio          {requests_per_s / bound:.3f}")
    print(
        f"max per host   {max_per_host} (limit {args.per_host}); peak total {stats['peak_total']}"
    )
    load = os.getloadavg()[0]
    raw_ratio = None
    if raw_elapsed:
        raw_ratio = round(args.sources / raw_elapsed / bound, 3)
        print(
            f"bare sockets   {args.sources / raw_elapsed:.1f} requests/s, ratio {raw_ratio}"
            " (same server, same concurrency, no limits: the machine's ceiling now)"
        )
    print(
        f"client CPU     {client_cpu / requests * 1000:.2f} ms per request;"
        f" load average {load:.1f} on {os.cpu_count()} CPUs (others' work slows a latency bench)"
    )
    result = {
        "requests_per_s": round(requests_per_s, 1),
        "bound_per_s": round(bound, 1),
        "ratio": round(requests_per_s / bound, 3),
        "max_per_host": max_per_host,
        "per_host_limit": args.per_host,
        "max_in_flight": stats["peak_total"],
        "sources": args.sources,
        "hosts": args.hosts,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "failures": failures,
        "client_cpu_ms_per_request": round(client_cpu / requests * 1000, 2),
        "load_average": round(load, 1),
        "bare_socket_ratio": raw_ratio,
    }
    print(json.dumps(result))
    return 0 if failures == 0 and max_per_host <= args.per_host else 1


if __name__ == "__main__":
    raise SystemExit(main())
