"""A local SMTP sink for the fan-out benchmark: accepts every message, records its recipients.

    python -m bench.smtp_sink PORT RECIPIENTS_FILE

Speaks just enough SMTP for smtplib and Django's SMTP backend (EHLO/HELO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT; no TLS, no AUTH), on 127.0.0.1 only. Each accepted message appends one line
to RECIPIENTS_FILE: its envelope recipients, comma-separated (flushed, so the count is exact
when the sender's last 250 has arrived). Runs until terminated.
"""

from __future__ import annotations

import asyncio
import sys

MAX_MESSAGE = 10 * 1024 * 1024


class Sink:
    def __init__(self, path: str):
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's life

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recipients: list[str] = []

        def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")

        reply("220 bench-sink ESMTP")
        try:
            while line := await reader.readline():
                command = line.decode("latin-1").rstrip("\r\n")
                verb = command[:4].upper()
                if verb == "EHLO":
                    writer.write(
                        b"250-bench-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
                    )
                elif verb == "HELO":
                    reply("250 bench-sink")
                elif verb == "MAIL":
                    recipients = []
                    reply("250 OK")
                elif verb == "RCPT":
                    address = command.partition(":")[2].strip()
                    recipients.append(address.split()[0].strip("<>") if address else "")
                    reply("250 OK")
                elif verb == "DATA":
                    reply("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    # The whole message at once: reading it line by line took more of the
                    # machine's two cores than the sender being measured.
                    await reader.readuntil(b"\r\n.\r\n")
                    self.out.write(",".join(recipients) + "\n")
                    recipients = []
                    reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    recipients = [] if verb == "RSET" else recipients
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 Bye")
                    await writer.drain()
                    break
                else:
                    reply("502 Command not implemented")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def serve(port: int, path: str) -> None:
    sink = Sink(path)
    server = await asyncio.start_server(sink.handle, "127.0.0.1", port, limit=MAX_MESSAGE)
    async with server:
        await server.serve_forever()


def main() -> None:
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
