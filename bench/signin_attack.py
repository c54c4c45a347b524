"""Figure 9: sign-in under an attack from many addresses, against the same sign-ins unattacked.

    python -m bench.signin_attack --size full --json out.json

Served as figure 1 is (`gunicorn aup_portal.wsgi`, sync workers, production-like settings), with
PORTAL_TRUSTED_PROXIES=127.0.0.1 as behind a load balancer: the socket address is always the
"balancer's", and the X-Forwarded-For the client sends is believed. Every sign-in and every
attempt comes from its own forwarded address in 198.18.0.0/15 (the range set aside for
benchmarks). The limits are allauth's, ACCOUNT_RATE_LIMITS in the portal's settings ("login":
POSTs per address; "login_failed": failed attempts per address and per account), counted in
the cache the workers share (the database's cache table, or Redis when REDIS_URL is set).

Each run has three phases of the same length:
- baseline: N people (distinct accounts of the data set, whose password is
  bench.common.PASSWORD) sign in at evenly spaced times: GET /accounts/login/ (CSRF cookie and
  token), then POST the form; success is allauth's redirect to the home page. Latency is the
  GET and the POST together, as the person waits for both;
- spread attack: the same sign-ins while attacker connections POST wrong passwords as fast as
  the server answers them, each attempt from a random one of the attacker's addresses at a
  random one of M other accounts;
- concentrated attack: the same, every attempt at one victim account.
Each attack uses fresh accounts and addresses (allauth remembers a failure for minutes), and
one attacked account (in the spread attack one of the M, in the other the victim) signs in
with its correct password half-way through. The limits these accounts and addresses are
counted against are forgotten before the first run, so that a second run does not inherit
the first's.

An attempt is "checked" when its password was compared: the page says that the email address
and/or password are not correct. Every other attempt is answered without a check: the form's
"Too many failed login attempts" (login_failed) or a 429 (login). However many workers serve
the attack, no account may have more checked attempts than the per-account limit allows; the
cache's own record of each account's failures must agree, and the gunicorn access log (the
worker's pid per request) shows how many workers the attack reached.

The client is this module run as `python -m bench.signin_attack client job.json result.json`,
in its own process: an asyncio client on raw streams, one connection per request.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlencode

from bench.common import (
    OUT,
    PASSWORD,
    Figure,
    gunicorn,
    main_args,
    median,
    percentile,
    python,
    size,
    write_json,
)

LOGIN_PATH = "/accounts/login/"
TIMEOUT_S = 60.0
USER_AGENT = "aup-portal-bench/1.0 (asyncio)"
PEOPLE_ADDRESSES = ipaddress.ip_address("198.18.0.1")
ATTACK_ADDRESSES = ipaddress.ip_address("198.19.0.1")
PROXY = "127.0.0.1"
# The worker's pid, the method, the status and the forwarded address of every request.
ACCESS_LOG = "--access-logfile - --access-logformat '%(p)s %(m)s %(s)s %({x-forwarded-for}i)s'"
PHASES = ("baseline", "spread", "concentrated")


# --- The client (its own process) --------------------------------------------------------------


async def exchange(
    host: str, port: int, method: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict[str, list[str]], str]:
    """One request on its own connection: status, headers (lower-case names), body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {LOGIN_PATH} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"User-Agent: {USER_AGENT}", *(f"{k}: {v}" for k, v in headers.items())]
        if method == "POST":
            lines += [
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body.encode())}",
            ]
        writer.write(("\r\n".join([*lines, "Connection: close", "", ""]) + body).encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, content = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        return 0, {}, ""
    received: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        received.setdefault(name.strip().lower(), []).append(value.strip())
    return status, received, content.decode("utf-8", "replace")


async def login_form(host: str, port: int, address: str) -> tuple[str, str]:
    """GET the sign-in page from `address`: the cookies it sets and the form's CSRF token."""
    status, headers, body = await exchange(host, port, "GET", {"X-Forwarded-For": address})
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if status != 200 or token is None:
        raise OSError(f"the sign-in page answered {status} without a CSRF token")
    cookies = "; ".join(value.split(";", 1)[0] for value in headers.get("set-cookie", []))
    return cookies, token.group(1)


def outcome(job: dict, status: int, headers: dict[str, list[str]], body: str) -> str:
    if status == 302 and headers.get("location", [""])[0] == job["home"]:
        return "signed_in"
    if status == 429:
        return "refused"  # allauth's "login" limit, before the form is read
    if status == 200 and job["throttled_text"] in body:
        return "throttled"  # login_failed: answered without checking the password
    if status == 200 and job["mismatch_text"] in body:
        return "checked"
    return f"other {status} {headers.get('location', [''])[0]}"


async def post_login(
    job: dict, address: str, cookies: str, token: str, email: str, password: str
) -> str:
    host, port = job["host"], job["port"]
    body = urlencode({"login": email, "password": password, "csrfmiddlewaretoken": token})
    headers = {"X-Forwarded-For": address, "Cookie": cookies}
    return outcome(job, *await exchange(host, port, "POST", headers, body))


async def sign_in(job: dict, person: dict, origin: float, out: list) -> None:
    """One person's sign-in at their time: the page, then the form with the right password."""
    await asyncio.sleep(max(0.0, origin + person["at"] - time.perf_counter()))
    started = time.perf_counter()
    posted = started
    try:
        async with asyncio.timeout(TIMEOUT_S):
            cookies, token = await login_form(job["host"], job["port"], person["address"])
            posted = time.perf_counter()
            result = await post_login(
                job, person["address"], cookies, token, person["email"], job["password"]
            )
    except (TimeoutError, OSError) as error:
        result = f"error {type(error).__name__}: {error}"
    ended = time.perf_counter()
    out.append(
        {
            **person,
            "started_s": started - origin,
            "total_s": ended - started,
            "post_s": ended - posted,
            "outcome": result,
        }
    )


async def attacker(job: dict, number: int, origin: float, out: list) -> None:
    """Wrong passwords until the phase ends, each from a random address at a random account.

    One CSRF cookie and token serve every attempt, as they would a script.
    """
    attack = job["attack"]
    addresses, accounts = attack["addresses"], attack["accounts"]
    rng = random.Random(f"{attack['seed']}-{number}")
    deadline = origin + job["seconds"]
    try:
        async with asyncio.timeout(TIMEOUT_S):
            cookies, token = await login_form(
                job["host"], job["port"], addresses[number % len(addresses)]
            )
    except (TimeoutError, OSError) as error:
        out.append([0.0, 0.0, -1, -1, f"error {type(error).__name__}: {error}"])
        return
    attempt = 0
    while time.perf_counter() < deadline:
        account, address = rng.randrange(len(accounts)), rng.randrange(len(addresses))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                result = await post_login(
                    job,
                    addresses[address],
                    cookies,
                    token,
                    accounts[account],
                    f"wrong-{number}-{attempt}",
                )
        except (TimeoutError, OSError) as error:
            result = f"error {type(error).__name__}: {error}"
        out.append([started - origin, time.perf_counter() - started, account, address, result])
        attempt += 1


async def client(job: dict) -> dict:
    if not ipaddress.ip_address(job["host"]).is_loopback:
        raise SystemExit("the client only targets loopback addresses")
    signins: list[dict] = []
    attempts: list[list] = []
    origin = time.perf_counter()
    tasks = [sign_in(job, person, origin, signins) for person in job["signins"]]
    if job.get("attack"):
        tasks += [attacker(job, n, origin, attempts) for n in range(job["attack"]["clients"])]
    await asyncio.gather(*tasks)
    return {"wall_s": time.perf_counter() - origin, "signins": signins, "attempts": attempts}


def client_main(job_path: str, result_path: str) -> None:
    with open(job_path) as job_file:
        job = json.load(job_file)
    result = asyncio.run(client(job))
    with open(result_path, "w") as out:
        json.dump(result, out)


# --- The measurement ---------------------------------------------------------------------------


class Limits:
    """allauth's sign-in limits as the server counts them in the shared cache.

    The keys are computed with allauth's own functions for a request as the server sees it
    (same Host, the address it believes), so that a change in allauth fails here loudly.
    """

    def __init__(self, port: int):
        from allauth.account.adapter import get_adapter
        from allauth.core.internal.ratelimit import get_cache_key, get_rates
        from django.test import RequestFactory

        self.factory = RequestFactory(HTTP_HOST=f"127.0.0.1:{port}")
        self.adapter = get_adapter()
        self.get_cache_key = get_cache_key
        self.rates = {
            action: get_rates(app="allauth.account", action=action)
            for action in ("login", "login_failed")
        }
        (self.per_account,) = [r for r in self.rates["login_failed"] if r.per == "key"]

    def _key(self, action: str, rate, address: str, email: str = "") -> str:
        request = self.factory.post(LOGIN_PATH, REMOTE_ADDR=address)
        key = self.adapter._get_login_attempts_cache_key(request, email=email) if email else None
        return self.get_cache_key(request, app="allauth.account", action=action, rate=rate, key=key)

    def account_key(self, email: str) -> str:
        return self._key("login_failed", self.per_account, PROXY, email)

    def forget(self, addresses: list[str], emails: list[str]) -> None:
        """Forget what earlier runs counted against these addresses and accounts."""
        from django.core.cache import cache

        keys = [self.account_key(email) for email in emails]
        for action, rates in self.rates.items():
            keys += [
                self._key(action, rate, address)
                for rate in rates
                if rate.per == "ip"
                for address in addresses
            ]
        cache.delete_many(keys)

    def failures_recorded(self, email: str) -> int:
        """How many failed attempts the cache holds against the account (its window's)."""
        from django.core.cache import cache

        return len(cache.get(self.account_key(email)) or [])

    def posts_recorded(self, address: str) -> int:
        """How many sign-in POSTs the cache holds against the address (allauth's "login")."""
        from django.core.cache import cache

        (rate,) = [r for r in self.rates["login"] if r.per == "ip"]
        return len(cache.get(self._key("login", rate, address)) or [])


def attack_addresses(block: int, count: int) -> list[str]:
    return [str(ATTACK_ADDRESSES + block * count + n) for n in range(count)]


def run_phase(job: dict, tag: str) -> dict:
    """One phase in the client process; returns its raw result."""
    job_path = OUT / f"signin-{tag}.json"
    result_path = OUT / f"signin-{tag}-result.json"
    job_path.write_text(json.dumps(job))
    result_path.unlink(missing_ok=True)
    subprocess.run(
        [python(), "-m", "bench.signin_attack", "client", str(job_path), str(result_path)],
        check=True,
        timeout=job["seconds"] + 3 * TIMEOUT_S,
    )
    return json.loads(result_path.read_text())


def summarise(
    result: dict, accounts: list[str], addresses: list[str], limits: Limits | None
) -> dict:
    people = [s for s in result["signins"] if s["role"] == "person"]
    victims = [s for s in result["signins"] if s["role"] == "victim"]
    latencies = sorted(s["total_s"] for s in people)
    posts = sorted(s["post_s"] for s in people)
    summary = {
        "people": len(people),
        "signed_in": sum(s["outcome"] == "signed_in" for s in people),
        "failures": [s for s in people if s["outcome"] != "signed_in"][:5],
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "post_p95_ms": 1000 * percentile(posts, 0.95),
        "victims": [{k: s[k] for k in ("email", "started_s", "outcome")} for s in victims],
        "wall_s": result["wall_s"],
    }
    attempts = result["attempts"]
    if not accounts:
        return summary
    outcomes = Counter(
        kind if (kind := row[4]) in ("checked", "throttled", "refused") else "other"
        for row in attempts
    )
    checked = Counter(accounts[row[2]] for row in attempts if row[4] == "checked")
    recorded = {email: limits.failures_recorded(email) for email in accounts} if limits else {}
    used = {addresses[row[3]] for row in attempts if row[3] >= 0}
    counted = sum(limits.posts_recorded(a) > 0 for a in used) if limits else 0
    # From the first attempt to the last answer: the sign-ins may go on after the attack.
    span = max((row[0] + row[1] for row in attempts), default=0.0) or float("nan")
    summary.update(
        attempts=len(attempts),
        outcomes=dict(outcomes),
        other_examples=[r for r in attempts if r[4] not in ("checked", "throttled", "refused")][:5],
        attempts_per_s=len(attempts) / span,
        checked_per_s=outcomes["checked"] / span,
        accounts=len(accounts),
        accounts_checked=len(checked),
        most_checked=max(checked.values(), default=0),
        most_recorded=max(recorded.values(), default=0),
        checked_matches_cache=all(checked[e] == recorded.get(e, 0) for e in accounts),
        addresses_used=len(used),
        addresses_counted=counted,
        throttled_p50_ms=1000
        * percentile(sorted(row[1] for row in attempts if row[4] != "checked"), 0.5),
        checked_p50_ms=1000
        * percentile(sorted(row[1] for row in attempts if row[4] == "checked"), 0.5),
    )
    return summary


def workers_reached(log_text: str, addresses: set[str]) -> Counter:
    """How many of the attacker's POSTs each worker served (from the access log)."""
    served: Counter = Counter()
    for line in log_text.splitlines():
        match = re.match(r"<?(\d+)>? POST \d{3} (\S+)$", line.strip())
        if match and match.group(2) in addresses:
            served[match.group(1)] += 1
    return served


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    from bench.common import django_setup

    django_setup()
    from allauth.account.adapter import get_adapter
    from django.db import connection
    from django.urls import reverse
    from django.utils import translation

    from acknowledgements.models import User

    url = os.environ["DATABASE_URL"]
    seconds, n_people, runs = chosen.attack_seconds, chosen.signin_people, chosen.signin_runs
    per_run = chosen.attack_accounts + 1  # the spread attack's accounts and the victim
    needed = n_people + runs * per_run
    emails = list(
        User.objects.filter(is_active=True, is_staff=False, is_superuser=False)
        .filter(email__endswith="@bench.example.com")
        .order_by("pk")
        .values_list("email", flat=True)[:needed]
    )
    if len(emails) < needed:
        raise SystemExit(f"only {len(emails)} people can sign in; {needed} needed")
    with translation.override("en"):
        messages = get_adapter().error_messages
        mismatch_text = html.escape(str(messages["email_password_mismatch"]))
        throttled_text = html.escape(str(messages["too_many_login_attempts"]))
    home = reverse("acknowledgements:home")
    connection.close()
    people = [
        {"role": "person", "email": email, "address": str(PEOPLE_ADDRESSES + n)}
        for n, email in enumerate(emails[:n_people])
    ]
    plans = []
    for number in range(runs):
        attacked = emails[n_people + number * per_run : n_people + (number + 1) * per_run]
        plans.append(
            {
                "spread": attacked[:-1],
                "concentrated": attacked[-1:],
                "addresses": {
                    phase: attack_addresses(2 * number + k, chosen.attack_addresses)
                    for k, phase in enumerate(("spread", "concentrated"))
                },
                "victim_addresses": {
                    phase: str(PEOPLE_ADDRESSES + n_people + 2 * number + k)
                    for k, phase in enumerate(("spread", "concentrated"))
                },
            }
        )

    def schedule(extra: list[dict]) -> list[dict]:
        """The people at evenly spaced times; the attacked accounts half-way through."""
        timed = [{**p, "at": seconds * (n + 0.5) / len(people)} for n, p in enumerate(people)]
        return timed + [{**v, "at": seconds / 2} for v in extra]

    def job(port: int, signins: list[dict], attack: dict | None = None) -> dict:
        return {
            "host": "127.0.0.1",
            "port": port,
            "seconds": seconds,
            "home": home,
            "password": PASSWORD,
            "mismatch_text": mismatch_text,
            "throttled_text": throttled_text,
            "signins": signins,
            "attack": attack,
        }

    summaries: dict[str, list[dict]] = {phase: [] for phase in PHASES}
    attack_phase_of: dict[str, str] = {}
    log_name = "gunicorn-signin-attack"
    with gunicorn(
        url,
        workers=chosen.workers,
        log_name=log_name,
        PORTAL_TRUSTED_PROXIES=PROXY,
        GUNICORN_CMD_ARGS=ACCESS_LOG,
    ) as (port, _process):
        limits = Limits(port)
        limits.forget(
            [p["address"] for p in people]
            + [a for plan in plans for phase in plan["addresses"].values() for a in phase]
            + [a for plan in plans for a in plan["victim_addresses"].values()]
            + [PROXY],
            emails,
        )
        connection.close()
        warm = run_phase(job(port, [{**p, "at": 0.0} for p in people]), "warmup")
        failed = [s for s in warm["signins"] if s["outcome"] != "signed_in"]
        if failed:
            raise SystemExit(f"{len(failed)} warm-up sign-ins failed, e.g. {failed[:3]}")
        # Behind the "balancer", each person must be counted at their own address, never at
        # the balancer's, or one attack would throttle everyone.
        uncounted = [p["address"] for p in people if not limits.posts_recorded(p["address"])]
        if uncounted or limits.posts_recorded(PROXY):
            raise SystemExit(
                f"sign-ins were not counted per forwarded address ({len(uncounted)} addresses "
                f"uncounted, {limits.posts_recorded(PROXY)} POSTs counted at {PROXY})"
            )
        connection.close()
        for number, plan in enumerate(plans):
            victims = {
                phase: {
                    "role": "victim",
                    "email": plan[phase][0],
                    "address": plan["victim_addresses"][phase],
                }
                for phase in ("spread", "concentrated")
            }
            # The attacked accounts sign in unattacked too: their password works.
            result = run_phase(job(port, schedule(list(victims.values()))), f"baseline-{number}")
            summaries["baseline"].append(summarise(result, [], [], None))
            for phase in ("spread", "concentrated"):
                attack = {
                    "clients": chosen.attack_clients,
                    "addresses": plan["addresses"][phase],
                    "accounts": plan[phase],
                    "seed": f"{phase}-{number}",
                }
                attack_phase_of.update(dict.fromkeys(plan["addresses"][phase], phase))
                result = run_phase(
                    job(port, schedule([victims[phase]]), attack), f"{phase}-{number}"
                )
                summaries[phase].append(
                    summarise(result, plan[phase], plan["addresses"][phase], limits)
                )
                connection.close()
    log_text = (OUT / f"{log_name}.log").read_text()
    served = {
        phase: workers_reached(log_text, {a for a, p in attack_phase_of.items() if p == phase})
        for phase in ("spread", "concentrated")
    }
    write_json(args.json, figures(chosen, summaries, served, limits.per_account))


def figures(chosen, summaries: dict[str, list[dict]], served: dict, per_account) -> dict:
    base = summaries["baseline"]
    base_rate = 100 * sum(s["signed_in"] for s in base) / sum(s["people"] for s in base)
    base_p95 = median(s["p95_ms"] for s in base)
    victims_ok = all(v["outcome"] == "signed_in" for s in base for v in s["victims"])
    setup = (
        f"{chosen.signin_people} people signing in over {chosen.attack_seconds} s, each from its "
        f"own forwarded address; {chosen.attack_clients} attacker connections from "
        f"{chosen.attack_addresses} addresses; {chosen.workers} sync workers; "
        f"{chosen.signin_runs} run(s), latencies the median of the runs' p95"
    )
    limit = per_account.amount

    def ms(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.0f} ms"

    window = f"{per_account.duration:g} s"
    out = []
    for number, phase, aim in (
        ("9a", "spread", f"wrong passwords spread over {chosen.attack_accounts} other accounts"),
        ("9b", "concentrated", "wrong passwords at one victim account"),
    ):
        runs = summaries[phase]
        rate = 100 * sum(s["signed_in"] for s in runs) / sum(s["people"] for s in runs)
        failures = [f for s in runs for f in s["failures"]]
        out.append(
            Figure(
                number=number,
                name=f"Sign-in under attack ({aim}): people signed in",
                value=rate,
                unit="%",
                baseline_name="the same sign-ins without the attack",
                baseline=base_rate,
                target="100%",
                met=rate == 100 and base_rate == 100,
                note=f"{setup}; "
                + (f"failures: {failures[:3]}" if failures else "every person signed in")
                + ("" if victims_ok else "; an attacked account could not sign in unattacked"),
                samples=[100 * s["signed_in"] / s["people"] for s in runs],
            )
        )
    for number, phase in (("9c", "spread"), ("9d", "concentrated")):
        runs = summaries[phase]
        p95 = median(s["p95_ms"] for s in runs)
        out.append(
            Figure(
                number=number,
                name=f"Sign-in p95 latency (GET + POST) under the {phase} attack",
                value=p95,
                unit="ms",
                baseline_name="the same sign-ins without the attack",
                baseline=base_p95,
                ratio=p95 / base_p95,
                target="reported",
                note=(
                    f"p50 {median(s['p50_ms'] for s in runs):.0f} ms (baseline "
                    f"{median(s['p50_ms'] for s in base):.0f}); the POST alone p95 "
                    f"{median(s['post_p95_ms'] for s in runs):.0f} ms (baseline "
                    f"{median(s['post_p95_ms'] for s in base):.0f}); attempts "
                    f"{median(s['attempts_per_s'] for s in runs):.0f}/s, of which checked "
                    f"{median(s['checked_per_s'] for s in runs):.1f}/s (a password hash each; "
                    f"answered unchecked in {ms(median(s['throttled_p50_ms'] for s in runs))} "
                    f"p50, checked in {ms(median(s['checked_p50_ms'] for s in runs))})"
                ),
                samples=[s["p95_ms"] for s in runs],
            )
        )
    attacked = summaries["spread"] + summaries["concentrated"]
    most = max(s["most_checked"] for s in attacked)
    agree = all(s["checked_matches_cache"] for s in attacked)
    others = sum(s["outcomes"].get("other", 0) for s in attacked)

    def tally(phase: str) -> str:
        runs = summaries[phase]
        counts = Counter()
        for s in runs:
            counts.update(s["outcomes"])
        workers = served[phase]
        return (
            f"{phase}: {sum(s['attempts'] for s in runs)} attempts, {counts['checked']} checked "
            f"({sum(s['accounts_checked'] for s in runs)} of {sum(s['accounts'] for s in runs)} "
            f"accounts reached, at most {max(s['most_checked'] for s in runs)} each), "
            f"{counts['throttled']} answered 'too many failed attempts', {counts['refused']} "
            f"429; {sum(s['addresses_counted'] for s in runs)} of "
            f"{sum(s['addresses_used'] for s in runs)} addresses used counted on their own; "
            f"served by "
            f"{len(workers)} workers "
            f"({'/'.join(str(n) for n in sorted(workers.values(), reverse=True))} POSTs)"
        )

    out.append(
        Figure(
            number="9e",
            name="Wrong passwords checked per attacked account (most of any account)",
            value=most,
            unit="requests",
            target=f"<= {limit} ({limit} per {window} per account, all workers together)",
            met=most <= limit and agree and others == 0,
            note=(
                f"{tally('spread')}; {tally('concentrated')}; the cache's record of each "
                f"account's failures agrees with the checked answers: {agree}"
                + (
                    f"; {others} unexpected answers, e.g. "
                    f"{[e for s in attacked for e in s['other_examples']][:3]}"
                    if others
                    else ""
                )
            ),
            samples=[s["most_checked"] for s in attacked],
        )
    )
    victims = [(phase, v) for phase in ("spread", "concentrated") for s in summaries[phase]
               for v in s["victims"]]  # fmt: skip
    signed = sum(v["outcome"] == "signed_in" for _, v in victims)
    out.append(
        Figure(
            number="9f",
            name="Attacked accounts signing in themselves (correct password, half-way through)",
            value=100 * signed / len(victims),
            unit="%",
            target="reported",
            note=f"{signed} of {len(victims)} signed in; "
            + "; ".join(f"{phase}: {v['outcome'].replace('_', ' ')}" for phase, v in victims)
            + f" (the limit holds an account for {window} after its {limit}th failure, even "
            "against its owner: allauth refuses before checking the password)",
        )
    )
    return {"figures": [f.as_dict() for f in out], "summaries": summaries, "served": served}


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2], sys.argv[3])
    else:
        main()
