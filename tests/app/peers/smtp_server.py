"""An SMTP server for keyhold's tests: aiosmtpd (PyPI), requiring a sign-in.

Usage: smtp_server.py PORT USER PASSWORD LOG

Accepts AUTH PLAIN/LOGIN for USER and PASSWORD only (over the plain connection: a test
network), and appends each mail it takes to LOG as one JSON line.
"""
import json
import logging
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# AUTH without TLS is what this test network wants; aiosmtpd warns about it.
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

port, user, password, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class Mailbox:
    async def handle_DATA(self, server, session, envelope):
        entry = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
        }
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    if (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    ):
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


controller = Controller(
    Mailbox(),
    hostname="127.0.0.1",
    port=port,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
