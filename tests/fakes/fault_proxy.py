"""A reverse proxy in front of a registry that counts upload bytes and injects faults.

Prints `LISTENING <port>`. Everything is forwarded to --upstream (plain HTTP) with the Host
header kept, so the registry's Location headers point back at the proxy. Control endpoints:
  POST /__proxy/faults  [rule, ...]  rules fire in order of listing, each `times` times:
      {"method": "PATCH", "path": "/blobs/uploads/", "times": 1, "status": 503, "retry_after": "1"}
      {"method": "PATCH", "path": "/blobs/uploads/", "times": 1, "drop_after": 300000}
        (forwards that many body bytes upstream, then drops both connections;
         with "forward": false the registry sees nothing: a cut in front of it)
      "skip": N lets the first N matching requests through before the rule fires.
  GET  /__proxy/stats   {"upload_bytes": N, "fired": N, "requests": [[method, path, status], ...]}
  POST /__proxy/reset   clears stats and rules
upload_bytes counts request-body bytes of PATCH/PUT to `/blobs/uploads/` sent upstream.
"""
import argparse, http.client, json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--upstream", required=True)  # host:port
args = p.parse_args()
UP_HOST, UP_PORT = args.upstream.rsplit(":", 1)
LOCK = threading.Lock()
STATE = {"rules": [], "upload_bytes": 0, "fired": 0, "requests": []}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body_length(self):
        return int(self.headers.get("Content-Length") or 0)

    def control(self):
        n = self.body_length()
        raw = self.rfile.read(n) if n else b""
        with LOCK:
            if self.path == "/__proxy/faults":
                STATE["rules"].extend(json.loads(raw or b"[]"))
                out = {"rules": len(STATE["rules"])}
            elif self.path == "/__proxy/reset":
                STATE.update(rules=[], upload_bytes=0, fired=0, requests=[])
                out = {}
            else:
                out = {k: STATE[k] for k in ("upload_bytes", "fired", "requests")}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def rule(self):
        with LOCK:
            for r in STATE["rules"]:
                if r.get("times", 1) > 0 and r.get("method", self.command) == self.command and r.get("path", "") in self.path:
                    if r.get("skip", 0) > 0:
                        r["skip"] -= 1
                        continue
                    r["times"] = r.get("times", 1) - 1
                    STATE["fired"] += 1
                    return r
        return None

    def record(self, status):
        with LOCK:
            STATE["requests"].append([self.command, self.path.split("?")[0], status])

    def count(self, n):
        if self.command in ("PATCH", "PUT") and "/blobs/uploads/" in self.path:
            with LOCK:
                STATE["upload_bytes"] += n

    def forward(self):
        if self.path.startswith("/__proxy/"):
            return self.control()
        n = self.body_length()
        rule = self.rule()
        if rule and "status" in rule:
            if n:
                self.rfile.read(n)
            self.record(rule["status"])
            self.send_response(rule["status"])
            if "retry_after" in rule:
                self.send_header("Retry-After", str(rule["retry_after"]))
            self.send_header("Content-Type", "application/json")
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if rule and "drop_after" in rule and not rule.get("forward", True):
            # Cut between client and proxy: the registry never sees this request.
            self.rfile.read(min(n, int(rule["drop_after"])))
            self.record("dropped")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        up = http.client.HTTPConnection(UP_HOST, int(UP_PORT), timeout=120)
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                up.putheader(k, v)
        up.endheaders()
        if rule and "drop_after" in rule:
            part = self.rfile.read(min(n, int(rule["drop_after"])))
            up.send(part)
            self.count(len(part))
            self.record("dropped")
            up.sock.shutdown(socket.SHUT_RDWR)
            up.close()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        left = n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            up.send(chunk)
            self.count(len(chunk))
            left -= len(chunk)
        resp = up.getresponse()
        data = resp.read()
        self.record(resp.status)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        length = resp.getheader("Content-Length")
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        up.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"LISTENING {server.server_address[1]}", flush=True)
server.serve_forever()
