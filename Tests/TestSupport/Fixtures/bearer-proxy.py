#!/usr/bin/env python3
"""A registry front door with bearer-token auth, as Docker Hub has: /token trades basic credentials for a
token; /v2/ requests without "Bearer <token>" get a 401 challenge naming /token; the rest is relayed to the
registry behind. Every /v2/ request that reaches the registry is logged, one "METHOD path" per line; blob
requests are answered BLOB_DELAY seconds late (a pull slow enough to be killed half-way).
Usage: bearer-proxy.py PORT UPSTREAM(host:port) USER PASSWORD LOGFILE [BLOB_DELAY]"""
import base64, http.client, http.server, json, sys, time

port, upstream, user, password, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
blob_delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0
# The first this many token requests get no answer (the connection closes): a token service failing for a moment.
token_drops = int(sys.argv[7]) if len(sys.argv) > 7 else 0
TOKEN = "podvisor-test-token"


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global token_drops
        authorization = self.headers.get("Authorization", "")
        if self.path.startswith("/token") and token_drops > 0:
            token_drops -= 1
            self.close_connection = True
            return
        if self.path.startswith("/token"):
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if authorization != expected:
                return self.reply(401)
            return self.reply(200, json.dumps({"token": TOKEN}).encode(), [("Content-Type", "application/json")])
        if authorization != "Bearer " + TOKEN:
            challenge = f'Bearer realm="http://127.0.0.1:{port}/token",service="podvisor-test",scope="repository:busybox:pull"'
            return self.reply(401, b"{}", [("WWW-Authenticate", challenge)])
        with open(log, "a") as f:
            f.write(f"GET {self.path}\n")
        if "/blobs/" in self.path:
            time.sleep(blob_delay)
        connection = http.client.HTTPConnection(upstream)
        connection.request("GET", self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
        response = connection.getresponse()
        body = response.read()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() in ("content-type", "docker-content-digest")]
        self.reply(response.status, body, headers)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
