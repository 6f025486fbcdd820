"""Token service for docker-registry's `auth.token` (the Docker registry token flow).

GET /token?service=S&scope=repository:NAME:ACTIONS... with Basic auth -> {"token": JWT}.
The JWT is RS256 with the signing certificate in its `x5c` header; the registry trusts that
certificate through `rootcertbundle`. Every requested scope is granted to the one known user;
anonymous or wrong credentials get 401. Prints `LISTENING <port>` when ready.
Usage: registry_token_server.py --key KEY.pem --cert CERT.pem --user U --password P [--issuer I]
"""
import argparse, base64, json, ssl, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt

p = argparse.ArgumentParser()
for a in ("--key", "--cert", "--user", "--password"):
    p.add_argument(a, required=True)
p.add_argument("--issuer", default="deployer-test-token-issuer")
args = p.parse_args()
KEY = open(args.key, "rb").read()
DER = ssl.PEM_cert_to_DER_cert(open(args.cert).read())
X5C = [base64.b64encode(DER).decode()]
EXPECTED = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        if self.headers.get("Authorization") != EXPECTED:
            return self.reply(401, {"error": "bad credentials"})
        q = parse_qs(url.query)
        access = []
        for scope in q.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": args.issuer, "sub": args.user, "aud": q.get("service", [""])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = jwt.encode(claims, KEY, algorithm="RS256", headers={"x5c": X5C})
        self.reply(200, {"token": token, "access_token": token, "expires_in": 300})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"LISTENING {server.server_address[1]}", flush=True)
server.serve_forever()
