#!/usr/bin/env python3
"""Pre-mints authorization codes and refresh tokens for the benchmark, so
that wrk measures the token endpoint alone. Signs in as a person, approves
the consent page once, then asks /oauth/authorize for codes (consent is
remembered, so each answer is a redirect with a code).

usage: mint.py BASE EMAIL PASSWORD CLIENT_ID REDIRECT CODES REFRESH OUT_CODES OUT_REFRESH [SCOPE]

SCOPE defaults to "read"; offline_access is always added (for the refresh
tokens). "openid read" measures the grants with an ID token.
"""
import base64, hashlib, html, http.client, re, sys, urllib.parse

base, email, password, client_id, redirect = sys.argv[1:6]
n_codes, n_refresh = int(sys.argv[6]), int(sys.argv[7])
out_codes, out_refresh = sys.argv[8], sys.argv[9]
scope = (sys.argv[10] if len(sys.argv) > 10 else "read") + " offline_access"
host = urllib.parse.urlparse(base).netloc
conn = http.client.HTTPConnection(host)
cookies = {}
VERIFIER = "bench-verifier-" + "x" * 40
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def request(method, path, body=None):
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if body is not None:
        body = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    res = conn.getresponse()
    data = res.read().decode()
    for name, value in res.getheaders():
        if name.lower() == "set-cookie":
            k, v = value.split(";")[0].split("=", 1)
            cookies[k] = v
    return res.status, res.getheader("Location"), data


def hidden(page):
    return [(html.unescape(n), html.unescape(v))
            for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)]


_, _, page = request("GET", "/login")
status, _, _ = request("POST", "/login", hidden(page) + [("email", email), ("password", password)])
assert status == 302, f"sign-in failed: {status}"
query = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
    "scope": scope, "code_challenge": CHALLENGE, "code_challenge_method": "S256",
})
status, _, page = request("GET", f"/oauth/authorize?{query}")
if status == 200:
    status, _, _ = request("POST", "/oauth/consent", hidden(page) + [("decision", "approve")])


def code():
    status, location, _ = request("GET", f"/oauth/authorize?{query}")
    assert status == 302, status
    return urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]


with open(out_refresh, "w") as f:
    for _ in range(n_refresh):
        status, _, body = request("POST", "/oauth/token", [
            ("grant_type", "authorization_code"), ("code", code()), ("redirect_uri", redirect),
            ("client_id", client_id), ("code_verifier", VERIFIER)])
        assert status == 200, body
        f.write(re.search(r'"refresh_token":"([^"]+)"', body).group(1) + "\n")
with open(out_codes, "w") as f:
    for _ in range(n_codes):
        f.write(code() + "\n")
print(VERIFIER)
