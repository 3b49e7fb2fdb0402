#!/usr/bin/env python3
"""Issue #19's two floods, against the release server on loopback:

1. bad client credentials at /oauth/token, /oauth/introspect and
   /oauth/revoke from one address, as fast as THREADS clients send them:
   how many are refused 401 (checked and audited) and 429 (counted before
   anything is written), and how many audit rows they leave;
2. wrong-password sign-ins for one account from ADDRESSES addresses (a
   trusted proxy's X-Forwarded-For), THREADS at once: the statuses (401
   checked, 429 throttled, 503 beyond the hash bound) and the audit rows;
3. sign-ins for a different unknown email each (every one costs an argon2
   hash: no account throttle stops them) from the same addresses: the
   statuses, and the server's peak memory (VmHWM) and CPU time.

    bench/floods.py                       # builds the release binary
    TESSERA_BIN=target/release/tessera bench/floods.py
    REQUESTS=3000 ADDRESSES=400 THREADS=32 bench/floods.py

Stdlib only. A fresh SQLite database in a temporary directory, removed on
exit.
"""

import base64
import collections
import concurrent.futures
import http.client
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = int(os.environ.get("PORT", "18090"))
REQUESTS = int(os.environ.get("REQUESTS", "3000"))
ADDRESSES = int(os.environ.get("ADDRESSES", "400"))
THREADS = int(os.environ.get("THREADS", "32"))


def binary():
    if os.environ.get("TESSERA_BIN"):
        return os.environ["TESSERA_BIN"]
    subprocess.run(["cargo", "build", "--release", "--manifest-path", f"{ROOT}/Cargo.toml"], check=True)
    return f"{ROOT}/target/release/tessera"


def post(path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    try:
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        res.read()
        return res.status
    finally:
        conn.close()


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def audit_rows(db, actions):
    with sqlite3.connect(db) as c:
        marks = ",".join("?" * len(actions))
        return c.execute(f"SELECT count(*) FROM audit_events WHERE action IN ({marks})", actions).fetchone()[0]


def main():
    tessera = binary()
    work = tempfile.mkdtemp()
    db = f"{work}/tessera.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(
        TESSERA_DATABASE_URL=f"sqlite://{db}",
        TESSERA_BIND=f"127.0.0.1:{PORT}",
        TESSERA_LOG_LEVEL="warn",
        TESSERA_TRUSTED_PROXIES="127.0.0.1",
        # The per-address sign-in limit out of the way: the throttle and the
        # hash bound are what is measured.
        TESSERA_SIGNIN_RATE_LIMIT="1000000",
    )
    server = subprocess.Popen([tessera, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if "password" in line.lower():
                break
        created = subprocess.run(
            [tessera, "client", "create", "--name", "Flood", "--grant-type", "client_credentials", "--scope", "read"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
        client_id = re.search(r"(cl_[A-Za-z0-9]+)", created).group(1)
        bad = "Basic " + base64.b64encode(f"{client_id}:not-the-secret".encode()).decode()
        form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": bad}

        # 1. Bad client credentials from one address.
        paths = [("/oauth/token", "grant_type=client_credentials"), ("/oauth/introspect", "token=x"),
                 ("/oauth/revoke", "token=x")]
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            statuses = collections.Counter(pool.map(lambda i: post(*paths[i % 3], form), range(REQUESTS)))
        elapsed = time.monotonic() - start
        time.sleep(1)  # the sampled rows are written off the request path
        rows = audit_rows(db, ["client.auth_failed"])
        print(f"bad client credentials: {REQUESTS} from one address in {elapsed:.2f} s -> "
              f"{dict(sorted(statuses.items()))}, client.auth_failed rows: {rows}")

        # 2. Wrong-password sign-ins from many addresses.
        subprocess.run([tessera, "user", "create", "--email", "bea@example.com", "--name", "Bea", "--password-stdin"],
                       env=env, input="correct horse battery\n", capture_output=True, text=True, check=True)
        csrf = "c" * 32
        body = urllib.parse.urlencode(
            {"email": "bea@example.com", "password": "not her password", "csrf_token": csrf, "next": "/"})
        before = peak_kib(server.pid)

        def sign_in(i):
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"tessera_login={csrf}",
                       "X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
            return post("/login", body, headers)

        attempts = ADDRESSES * 4
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            statuses = collections.Counter(pool.map(lambda i: sign_in(i % ADDRESSES), range(attempts)))
        elapsed = time.monotonic() - start
        rows = audit_rows(db, ["login.failed", "login.throttled"])
        print(f"wrong sign-ins for one account: {attempts} from {ADDRESSES} addresses, {THREADS} at once, "
              f"in {elapsed:.2f} s -> {dict(sorted(statuses.items()))}; login audit rows: {rows}")

        # 3. A new unknown email each time: every attempt would hash.
        def guess(i):
            email = f"nobody{i}@example.com"
            body = urllib.parse.urlencode(
                {"email": email, "password": "guess", "csrf_token": csrf, "next": "/"})
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"tessera_login={csrf}",
                       "X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
            return post("/login", body, headers)

        def cpu_secs():
            with open(f"/proc/{server.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        cpu = cpu_secs()
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            statuses = collections.Counter(pool.map(lambda i: guess(i), range(attempts)))
        elapsed = time.monotonic() - start
        rows = audit_rows(db, ["login.failed", "login.throttled"])
        print(f"sign-ins for {attempts} unknown emails from {ADDRESSES} addresses, {THREADS} at once, in "
              f"{elapsed:.2f} s -> {dict(sorted(statuses.items()))}; server CPU {cpu_secs() - cpu:.1f} s; "
              f"peak memory {before // 1024} MiB before the sign-ins, {peak_kib(server.pid) // 1024} MiB after; "
              f"login audit rows in all: {rows}")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
