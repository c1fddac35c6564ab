"""A local SMTP server for the e-mail alert test.

aiosmtpd on 127.0.0.1:PORT with STARTTLS required (certificate and key
given), no authentication. Each message is written to OUT_DIR as NNNN.eml
with NNNN.json beside it (whether the session was encrypted, the envelope).
Prints READY once it accepts connections and runs until it is killed.

    python smtp_server.py PORT CERT KEY OUT_DIR
"""

import json
import pathlib
import ssl
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out: pathlib.Path):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = self.out / f"{self.n:04d}"
        base.with_suffix(".eml").write_bytes(envelope.content)
        base.with_suffix(".json").write_text(
            json.dumps(
                {
                    "tls": session.ssl is not None,
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                }
            )
        )
        return "250 Message accepted"


def main() -> None:
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    controller = Controller(
        Handler(pathlib.Path(out)),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
    )
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
