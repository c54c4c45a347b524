"""A small HTTP load generator: N concurrent clients, each with its own cookies, in one process.

    python -m bench.loadgen job.json result.json

Written on asyncio streams (standard library only) because each client must carry its own
session cookie and CSRF token, which wrk cannot do per connection without a Lua script. The
job lists, for each client, the requests it sends one after another (each a POST with its
own cookie and form body). gunicorn's sync workers close the connection after every response,
so each request opens a connection, sends `Connection: close` and reads to EOF; its latency is
measured from the connect to the last byte, so it includes the wait in the listen queue.

The result lists, per request: client, start (s since the run began), latency (s), HTTP
status and Location header. Only loopback addresses are accepted; every request has a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import time

TIMEOUT_S = 60.0
USER_AGENT = "aup-portal-bench/1.0 (asyncio)"


def _request(host: str, port: int, item: dict) -> bytes:
    body = item["body"].encode()
    head = (
        f"POST {item['path']} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        f"Cookie: {item['cookie']}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _status(response: bytes) -> tuple[int, str]:
    head, _, _ = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, ""
    location = next(
        (
            line.split(":", 1)[1].strip()
            for line in lines[1:]
            if line.lower().startswith("location:")
        ),
        "",
    )
    return status, location


async def _one(host: str, port: int, raw: bytes) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    return _status(response)


async def _client(number: int, host: str, port: int, items: list[dict], origin: float, out: list):
    raws = [_request(host, port, item) for item in items]
    for raw in raws:
        start = time.perf_counter()
        try:
            status, location = await asyncio.wait_for(_one(host, port, raw), TIMEOUT_S)
        except (TimeoutError, OSError) as error:
            status, location = 0, f"{type(error).__name__}: {error}"
        end = time.perf_counter()
        out.append([number, start - origin, end - start, status, location])


async def run(job: dict) -> dict:
    host, port = job["host"], job["port"]
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("the load generator only targets loopback addresses")
    results: list = []
    origin, cpu_origin = time.perf_counter(), time.process_time()
    await asyncio.gather(
        *(
            _client(number, host, port, items, origin, results)
            for number, items in enumerate(job["clients"])
        )
    )
    return {
        "wall_s": time.perf_counter() - origin,
        # This process's own CPU time while it sent the requests (bench/cpu.py).
        "cpu_s": time.process_time() - cpu_origin,
        "results": results,
    }


def main() -> None:
    job_path, result_path = sys.argv[1], sys.argv[2]
    with open(job_path) as job_file:
        job = json.load(job_file)
    result = asyncio.run(run(job))
    with open(result_path, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
