#!/usr/bin/env python3
"""Two `tessera serve` instances on one PostgreSQL database, a mixed load
against both, and a database cut half-way (issue #14).

    bench/fleet.py                                  # 600 s, cut at 300 s for 15 s
    bench/fleet.py --duration 60 --cut-at 20 --json out.json
    TESSERA_BIN=target/release/tessera bench/fleet.py

Loopback only. Creates a fresh database (tessera_fleet_<pid>), puts a TCP
proxy this script controls between the servers and PostgreSQL, sets the
servers up with the CLI, runs the load for --duration seconds with a bounded
number of workers, cuts the proxy (every open connection closed, new ones
refused) at --cut-at for --cut-for seconds, measures how requests fail and
how fast both instances recover, then checks that every kept access token
still introspects active and every API key created during the run still
works. Prints a summary, writes --json, and exits 1 when a goal is missed:
any 5xx outside the cut, any 500 ever, any hang, a recovery slower than
--recovery-limit, a lost row, an unexpected 4xx or a transport error.
Everything it started is stopped and the database dropped on exit, Ctrl-C
included. Needs python3 (stdlib only), psql, and cargo unless TESSERA_BIN.
"""
import argparse
import array
import base64
import collections
import hashlib
import html
import http.client
import json
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KINDS = ["token_cc", "introspect", "v1_me", "keys_verify", "authorize", "token_code", "api_key_create"]
LABELS = {
    "token_cc": "POST /oauth/token (client_credentials)",
    "introspect": "POST /oauth/introspect",
    "v1_me": "GET /v1/me (API key)",
    "keys_verify": "POST /v1/keys/verify",
    "authorize": "GET /oauth/authorize (mints a code)",
    "token_code": "POST /oauth/token (code exchange)",
    "api_key_create": "POST /v1/api-keys (admin key)",
}
# The status each kind answers when it works.
OK = {"authorize": 302, "api_key_create": 201}
# One worker's cycle; odd length, so every kind meets both instances in turn.
# "code" is two requests: authorize on one instance, the exchange on the other.
MIX = ["token_cc", "v1_me", "introspect", "keys_verify", "code", "token_cc", "v1_me", "introspect", "keys_verify"]
TIMEOUT, TRANSPORT = 0, -1  # pseudo statuses: no answer in --timeout; connection error

RESOURCE = "https://fleet.bench.example"
REDIRECT = "https://fleet.bench.example/callback"
VERIFIER = "fleet-verifier-" + "x" * 40
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- HTTP ----


class Http:
    """Keep-alive connections to each instance, one per instance; plus the
    cookies of one browser. Never raises for a failed request: a timeout is
    status 0, a connection error -1 (with the error as body)."""

    def __init__(self, hosts, timeout):
        self.hosts, self.timeout = hosts, timeout
        self.conns = [None] * len(hosts)
        self.cookies = {}
        self.retries = 0

    def _drop(self, inst):
        if self.conns[inst] is not None:
            self.conns[inst].close()
            self.conns[inst] = None

    def request(self, inst, method, path, body=None, headers=None, cookies=False):
        """(start, status, body bytes, Location, latency in s)."""
        headers = dict(headers or {})
        if cookies and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        start = time.monotonic()
        for attempt in (0, 1):
            conn = self.conns[inst]
            reused = conn is not None
            if conn is None:
                conn = self.conns[inst] = http.client.HTTPConnection(self.hosts[inst], timeout=self.timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                res = conn.getresponse()
                data = res.read()
            except socket.timeout:
                self._drop(inst)
                return start, TIMEOUT, b"no answer within the timeout", None, time.monotonic() - start
            except (http.client.HTTPException, OSError) as e:
                self._drop(inst)
                # A keep-alive connection the server closed while idle: the
                # request never reached it; send it once more on a new one.
                if reused and attempt == 0 and isinstance(
                    e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    self.retries += 1
                    continue
                return start, TRANSPORT, repr(e).encode(), None, time.monotonic() - start
            latency = time.monotonic() - start
            if cookies:
                for name, value in res.getheaders():
                    if name.lower() == "set-cookie":
                        k, v = value.split(";")[0].split("=", 1)
                        self.cookies[k] = v
            return start, res.status, data, res.getheader("Location"), latency
        raise AssertionError("unreachable")

    def form(self, inst, path, fields, auth=None, cookies=False):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth:
            headers["Authorization"] = auth
        return self.request(inst, "POST", path, urllib.parse.urlencode(fields), headers, cookies)

    def post_json(self, inst, path, value, bearer):
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"}
        return self.request(inst, "POST", path, json.dumps(value), headers)


def field(body, name):
    """`name` of a JSON object body; None when the body is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get(name) if isinstance(value, dict) else None


def basic(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def hidden_inputs(page):
    return [
        (html.unescape(n), html.unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page)
    ]


def authorize_query(client_id):
    return urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "read",
        "resource": RESOURCE, "code_challenge": CHALLENGE, "code_challenge_method": "S256",
    })


def sign_in(http, inst, email, password):
    """Signs the browser of `http` in; raises when it cannot."""
    _, status, page, _, _ = http.request(inst, "GET", "/login", cookies=True)
    assert status == 200, f"GET /login: {status} {page[:300]!r}"
    fields = hidden_inputs(page.decode()) + [("email", email), ("password", password)]
    _, status, page, _, _ = http.form(inst, "/login", fields, cookies=True)
    assert status == 302, f"sign-in failed: {status} {page[:300]!r}"


def code_from(location):
    return urllib.parse.parse_qs(urllib.parse.urlparse(location or "").query).get("code", [None])[0]


# --------------------------------------------------------------- proxy ----


def proxy_main(pipe, target_host, target_port):
    """The cuttable TCP proxy, in a process of its own (so that the load's
    threads never slow the database traffic down). Commands on `pipe`:
    "cut" closes every open connection and refuses new ones until "restore";
    "stop" ends it. Answers each command with (name, number)."""
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def run():
        state = {"cut": False, "accepted": 0, "refused": 0}
        pairs = set()

        async def pump(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        async def handle(client_r, client_w):
            if state["cut"]:
                state["refused"] += 1
                client_w.transport.abort()
                return
            try:
                server_r, server_w = await asyncio.open_connection(target_host, target_port)
            except OSError:
                client_w.transport.abort()
                return
            if state["cut"]:
                state["refused"] += 1
                client_w.transport.abort()
                server_w.transport.abort()
                return
            state["accepted"] += 1
            pair = (client_w, server_w)
            pairs.add(pair)
            try:
                await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
            finally:
                pairs.discard(pair)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def command():
            try:
                cmd = pipe.recv()
            except (EOFError, OSError):
                cmd = "stop"
            if cmd in ("cut", "stop"):
                state["cut"] = True
                n = len(pairs)
                for client_w, server_w in list(pairs):
                    client_w.transport.abort()
                    server_w.transport.abort()
                pairs.clear()
                if cmd == "stop":
                    loop.remove_reader(pipe.fileno())
                    if not done.done():
                        done.set_result(None)
                reply = (cmd, n)
            elif cmd == "restore":
                state["cut"] = False
                reply = ("restore", state["refused"])
            else:
                reply = ("stats", dict(state, open=len(pairs)))
            try:
                pipe.send(reply)
            except OSError:
                pass

        loop.add_reader(pipe.fileno(), command)
        await done
        server.close()

    asyncio.run(run())


# ---------------------------------------------------------------- load ----


class Recorder:
    """One thread's requests, in parallel arrays."""

    def __init__(self):
        self.start = array.array("d")
        self.latency = array.array("d")
        self.kind = array.array("b")
        self.inst = array.array("b")
        self.status = array.array("h")
        self.samples = {}  # (kind, status) -> [count, first: (t, inst, body)]

    def add(self, kind, inst, start, status, body, latency):
        k = KINDS.index(kind)
        self.start.append(start)
        self.latency.append(latency)
        self.kind.append(k)
        self.inst.append(inst)
        self.status.append(status)
        if status != OK.get(kind, 200):
            entry = self.samples.get((kind, status))
            if entry is None:
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
                self.samples[(kind, status)] = [1, (start, inst, latency, text[:600])]
            else:
                entry[0] += 1

    def merge(self, other):
        for name in ("start", "latency", "kind", "inst", "status"):
            getattr(self, name).extend(getattr(other, name))
        for key, (n, first) in other.samples.items():
            mine = self.samples.get(key)
            if mine is None:
                self.samples[key] = [n, first]
            else:
                mine[0] += n
                if first[0] < mine[1][0]:
                    mine[1] = first


class Keeper:
    """A sample of issued access tokens: a reservoir over the whole run;
    the latest ones issued in the 5 s before the planned cut; and the first
    ones issued from the cut to 5 s after the planned restore."""

    def __init__(self, cap, cap_near, cut):
        self.cap, self.cut = cap, cut
        self.seen = 0
        self.sample = []
        self.before = collections.deque(maxlen=max(1, cap_near // 2))
        self.after, self.cap_after = [], max(1, cap_near - cap_near // 2)

    def add(self, token, start, kind, inst):
        item = (token, start, kind, inst)
        if self.cut[0] - 5 <= start < self.cut[0]:
            self.before.append(item)  # pushes out the oldest: the last ones before the cut stay
            return
        if self.cut[0] <= start <= self.cut[1] + 5 and len(self.after) < self.cap_after:
            self.after.append(item)
            return
        self.seen += 1
        if len(self.sample) < self.cap:
            self.sample.append(item)
        else:
            j = random.randrange(self.seen)
            if j < self.cap:
                self.sample[j] = item

    def kept(self):
        return self.sample + list(self.before) + self.after


def load_thread(cfg, tid, recorder, keeper, errors):
    http = Http(cfg["hosts"], cfg["timeout"])
    query = authorize_query(cfg["web_client"])
    verify_body = json.dumps({"key": cfg["api_key"]})
    try:
        sign_in(http, tid % 2, cfg["user_email"], cfg["user_password"])
    except Exception as e:  # noqa: BLE001 — reported, the thread still runs the rest
        errors.append(f"worker {tid}: {e}")
    token = cfg["seed_token"]
    while time.monotonic() < cfg["t_start"]:
        time.sleep(0.01)
    i = tid * 5
    while time.monotonic() < cfg["t_end"]:
        op = MIX[i % len(MIX)]
        inst = i % 2
        i += 1
        try:
            token = one_request(cfg, http, recorder, keeper, op, inst, token, query, verify_body)
        except Exception as e:  # noqa: BLE001 — a bug here must not silently stop a worker
            if len(errors) < 20:
                errors.append(f"worker {tid}, {op}: {e!r}")
            time.sleep(0.1)
    recorder.retries = http.retries


def one_request(cfg, http, recorder, keeper, op, inst, token, query, verify_body):
    """One step of the mix (two requests for the code flow); the token
    to introspect next."""
    cc_auth, api_key, web = cfg["cc_auth"], cfg["api_key"], cfg["web_client"]
    if op == "token_cc":
        start, status, body, _, lat = http.form(
            inst, "/oauth/token", [("grant_type", "client_credentials"), ("resource", RESOURCE)], cc_auth
        )
        issued = field(body, "access_token") if status == 200 else None
        if status == 200 and not issued:
            status = 297  # a 200 without a token
        recorder.add(op, inst, start, status, body, lat)
        if issued:
            token = issued
            keeper.add(token, start, op, inst)
    elif op == "introspect":
        start, status, body, _, lat = http.form(inst, "/oauth/introspect", [("token", token)], cc_auth)
        if status == 200 and field(body, "active") is not True:
            status = 299  # answered, but the token was not active: counted as wrong
        recorder.add(op, inst, start, status, body, lat)
    elif op == "v1_me":
        start, status, body, _, lat = http.request(inst, "GET", "/v1/me", headers={"Authorization": f"Bearer {api_key}"})
        recorder.add(op, inst, start, status, body, lat)
    elif op == "keys_verify":
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        start, status, body, _, lat = http.request(inst, "POST", "/v1/keys/verify", verify_body, headers)
        if status == 200 and field(body, "valid") is not True:
            status = 299
        recorder.add(op, inst, start, status, body, lat)
    else:  # the code flow: a code from one instance, exchanged at the other
        start, status, body, location, lat = http.request(inst, "GET", f"/oauth/authorize?{query}", cookies=True)
        code = code_from(location) if status == 302 else None
        if status == 302 and not code:
            status, body = 298, f"redirect without a code: {location}".encode()
        recorder.add("authorize", inst, start, status, body, lat)
        if not code:
            return token
        other = 1 - inst
        start, status, body, _, lat = http.form(other, "/oauth/token", [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
            ("client_id", web), ("code_verifier", VERIFIER),
        ])
        issued = field(body, "access_token") if status == 200 else None
        if status == 200 and not issued:
            status = 297
        recorder.add("token_code", other, start, status, body, lat)
        if issued:
            keeper.add(issued, start, "token_code", other)
    return token


def load_proc(cfg, threads, out):
    """A load process: `threads` workers; sends its records on `out`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    per_thread = max(1, cfg["keep"] // cfg["workers"])
    per_thread_near = max(1, cfg["keep_near"] // cfg["workers"])
    recs, keepers, errors, ts = [], [], [], []
    for n in range(threads):
        tid = cfg["first_tid"] + n
        recs.append(Recorder())
        keepers.append(Keeper(per_thread, per_thread_near, cfg["cut"]))
        t = threading.Thread(target=load_thread, args=(cfg, tid, recs[-1], keepers[-1], errors), daemon=True)
        t.start()
        ts.append(t)
    for t in ts:
        t.join()
    total = Recorder()
    retries = 0
    for r in recs:
        total.merge(r)
        retries += getattr(r, "retries", 0)
    tokens = [item for k in keepers for item in k.kept()]
    out.put({
        "start": total.start, "latency": total.latency, "kind": total.kind, "inst": total.inst,
        "status": total.status, "samples": total.samples, "tokens": tokens, "errors": errors, "retries": retries,
    })


# -------------------------------------------------------------- servers ---


class Fleet:
    """Everything started, so that `close` can stop it all, in reverse."""

    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="tessera-fleet-")
        self.db_name = f"tessera_fleet_{os.getpid()}"
        self.db_created = False
        self.servers = []  # (name, Popen, base url, stdout path, stderr path)
        self.proxy = None
        self.proxy_pipe = None
        self.procs = []
        self.closed = False

    # PostgreSQL -----------------------------------------------------------
    def psql(self, sql, db="postgres"):
        a = self.args
        return subprocess.run(
            ["psql", "-h", a.pg_host, "-p", str(a.pg_port), "-U", a.pg_user, "-d", db, "-v", "ON_ERROR_STOP=1",
             "-qAtc", sql],
            capture_output=True, text=True, check=True, env=dict(os.environ, PGCONNECT_TIMEOUT="5"),
        ).stdout

    def create_database(self):
        self.psql(f'CREATE DATABASE "{self.db_name}"')
        self.db_created = True

    # proxy ----------------------------------------------------------------
    def start_proxy(self):
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proxy = ctx.Process(target=proxy_main, args=(child, self.args.pg_host, self.args.pg_port), daemon=True)
        self.proxy.start()
        if not parent.poll(15):
            raise RuntimeError("the proxy did not start")
        self.proxy_pipe = parent
        return parent.recv()

    def proxy_command(self, cmd):
        self.proxy_pipe.send(cmd)
        return self.proxy_pipe.recv()

    # the binary and its environment -----------------------------------------
    def env(self, proxy_port):
        a = self.args
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update({
            "TESSERA_DATABASE_URL": f"postgres://{a.pg_user}@127.0.0.1:{proxy_port}/{self.db_name}",
            "TESSERA_MASTER_KEY_FILE": os.path.join(self.work, "master.key"),
            "TESSERA_ISSUER": a.issuer,
            "TESSERA_WORKERS": str(a.server_workers),
            "TESSERA_DATABASE_POOL_SIZE": str(a.pool_size),
            "TESSERA_DATABASE_CONNECT_TIMEOUT": str(a.connect_timeout),
            "TESSERA_LOG_LEVEL": a.log_level,
            "TESSERA_LOG_FORMAT": "json",
            # Far above this load: rate limits are not under test here.
            "TESSERA_API_RATE_LIMIT": "1000000",
            "TESSERA_API_RATE_LIMIT_MAX": "1000000",
            "TESSERA_IP_RATE_LIMIT": "1000000",
            "TESSERA_SIGNIN_RATE_LIMIT": "1000000",  # newer servers; older ones ignore it
            # The longest allowed, so that no kept token expires before the check.
            "TESSERA_ACCESS_TOKEN_TTL": "86400",
            "TESSERA_SHUTDOWN_TIMEOUT": "5",
        })
        if a.redis:
            # The fleet's limits counted in Redis: one round trip per check.
            env["TESSERA_REDIS_URL"] = a.redis
        return env

    def cli(self, env, *argv, stdin=None):
        res = subprocess.run([self.bin, *argv], env=env, input=stdin, capture_output=True, text=True, cwd=self.work)
        if res.returncode != 0:
            raise RuntimeError(f"tessera {' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def start_server(self, name, env):
        out = os.path.join(self.work, f"{name}.out")
        err = os.path.join(self.work, f"{name}.log")
        env = dict(env, TESSERA_BIND="127.0.0.1:0")
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([self.bin, "serve"], env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                    cwd=self.work, start_new_session=True)
        deadline = time.monotonic() + 60
        base = None
        while time.monotonic() < deadline and base is None:
            if proc.poll() is not None:
                raise RuntimeError(f"instance {name} exited ({proc.returncode}): {open(err).read()[-2000:]}")
            m = re.search(r"^Listening on (http://\S+)", open(out).read(), re.M)
            if m:
                base = m.group(1)
            else:
                time.sleep(0.05)
        if base is None:
            proc.kill()
            raise RuntimeError(f"instance {name} never said where it listens: {open(err).read()[-2000:]}")
        self.servers.append((name, proc, base, out, err))
        host = urllib.parse.urlparse(base).netloc
        http = Http([host], 5)
        while time.monotonic() < deadline:
            _, status, _, _, _ = http.request(0, "GET", "/readyz")
            if status == 200:
                return host
            time.sleep(0.1)
        raise RuntimeError(f"instance {name} never became ready")

    def stop_servers(self):
        for _, proc, *_ in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, *_ in self.servers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        try:
            self.stop_servers()
        except Exception as e:  # noqa: BLE001
            log(f"stopping the servers: {e}")
        if self.proxy is not None:
            try:
                self.proxy_pipe.send("stop")
            except OSError:
                pass
            self.proxy.join(5)
            if self.proxy.is_alive():
                self.proxy.kill()
        if self.db_created:
            try:
                self.psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
                self.db_created = False
            except subprocess.CalledProcessError as e:
                log(f"could not drop database {self.db_name}: {e.stderr.strip()}")
        if self.args.keep_logs:
            os.makedirs(self.args.keep_logs, exist_ok=True)
            for name in os.listdir(self.work):
                if name.endswith((".log", ".out")):
                    shutil.copy(os.path.join(self.work, name), self.args.keep_logs)
        shutil.rmtree(self.work, ignore_errors=True)


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def scan_log(path):
    """Counts a server's log lines by level; the most frequent messages."""
    levels, messages = {}, {}
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return {"levels": {}, "top": []}
    for line in lines:
        try:
            entry = json.loads(line)
            level = entry.get("level", "?")
            fields = entry.get("fields", entry)
            msg = f"{entry.get('target', '')}: {fields.get('message', '')}"
            detail = " ".join(str(fields.get("error") or "").split())
        except ValueError:
            level, msg, detail = "RAW", line, ""
        levels[level] = levels.get(level, 0) + 1
        key = f"{level} {msg}" + (f" ({str(detail)[:160]})" if detail else "")
        messages[key] = messages.get(key, 0) + 1
    top = sorted(messages.items(), key=lambda kv: -kv[1])[:8]
    return {"levels": levels, "top": [{"count": n, "line": k[:300]} for k, n in top]}


# ------------------------------------------------------------- analysis ---


def pct(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def ms(v):
    return None if v is None else round(v * 1000, 2)


def classify(status, kind):
    if status == OK.get(kind, 200):
        return "ok"
    if status == TIMEOUT:
        return "timeout"
    if status == TRANSPORT:
        return "transport"
    if status == 503:
        return "503"
    if status == 500:
        return "500"
    if status >= 500:
        return "5xx_other"
    return "unexpected"  # 4xx, a 2xx that says inactive/invalid, a redirect without a code


def summarize(records, kinds_of_interest, window, hang, duration):
    """Per kind and overall: counts, rates, latencies, failures by window."""
    cut0, cut_done, restore, recovered = window
    per = {k: {"lat": [], "fail_cut_lat": [], "n": {}} for k in kinds_of_interest + ["overall"]}
    for start, lat, kind, status in records:
        end = start + lat
        if end >= cut0 and start < restore:
            where = "cut"
        elif restore <= start <= recovered:
            where = "recovery"
        else:
            where = "normal"
        cls = classify(status, kind)
        for key in (kind, "overall"):
            entry = per[key]
            entry["lat"].append(lat)
            n = entry["n"]
            n[(where, cls)] = n.get((where, cls), 0) + 1
            if lat > hang:
                n[(where, "hang")] = n.get((where, "hang"), 0) + 1
            if where == "cut" and cls != "ok":
                entry["fail_cut_lat"].append(lat)
            if where == "cut" and cls == "ok" and start >= cut_done and end < restore:
                n[("cut", "ok_inside")] = n.get(("cut", "ok_inside"), 0) + 1
    out = {}
    for key, entry in per.items():
        lat = sorted(entry["lat"])
        n = entry["n"]

        def count(where, *classes):
            return sum(n.get((w, c), 0) for w in (where if isinstance(where, tuple) else (where,)) for c in classes)

        fails = sorted(entry["fail_cut_lat"])
        allw = ("normal", "cut", "recovery")
        out[key] = {
            "label": LABELS.get(key, "all requests"),
            "count": len(lat),
            "rps": round(len(lat) / duration, 1),
            "p50_ms": ms(pct(lat, 50)),
            "p99_ms": ms(pct(lat, 99)),
            "max_ms": ms(lat[-1] if lat else None),
            "normal": {
                "count": sum(v for (w, c), v in n.items() if w == "normal" and c != "hang"),
                "5xx": count("normal", "503", "500", "5xx_other"),
                "500": count("normal", "500"),
                "unexpected": count("normal", "unexpected"),
                "timeouts": count("normal", "timeout"),
                "transport": count("normal", "transport"),
                "hangs": count("normal", "hang"),
            },
            "cut": {
                "count": sum(v for (w, c), v in n.items() if w == "cut" and c not in ("hang", "ok_inside")),
                "2xx": count("cut", "ok"),
                "2xx_inside": count("cut", "ok_inside"),
                "503": count("cut", "503"),
                "500": count("cut", "500"),
                "5xx_other": count("cut", "5xx_other"),
                "unexpected": count("cut", "unexpected"),
                "timeouts": count("cut", "timeout"),
                "transport": count("cut", "transport"),
                "hangs": count("cut", "hang"),
                "fail_max_ms": ms(fails[-1] if fails else None),
                "fail_p99_ms": ms(pct(fails, 99)),
                "fail_p50_ms": ms(pct(fails, 50)),
            },
            "recovery": {
                "count": sum(v for (w, c), v in n.items() if w == "recovery" and c != "hang"),
                "2xx": count("recovery", "ok"),
                "5xx": count("recovery", "503", "500", "5xx_other"),
                "unexpected": count("recovery", "unexpected"),
                "hangs": count("recovery", "hang"),
            },
            "500_total": count(allw, "500"),
            "hangs_total": count(allw, "hang"),
        }
    return out


# ----------------------------------------------------------------- main ---


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    p.add_argument("--cut-at", type=float, help="seconds into the load when the database is cut (half-way)")
    p.add_argument("--cut-for", type=float, default=15, help="seconds the database stays cut (15)")
    p.add_argument("--procs", type=int, default=2, help="load processes (2)")
    p.add_argument("--threads", type=int, default=4, help="workers per load process (4)")
    p.add_argument("--key-every", type=float, default=2, help="seconds between API key creations (2)")
    p.add_argument("--keep", type=int, default=2000, help="access tokens kept for the final check (2000)")
    p.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as unanswered (30)")
    p.add_argument("--hang", type=float, default=5, help="a request slower than this is a hang (5)")
    p.add_argument("--recovery-limit", type=float, default=5, help="slowest acceptable recovery, s (5)")
    p.add_argument("--connect-timeout", type=int, default=1,
                   help="TESSERA_DATABASE_CONNECT_TIMEOUT of the servers, s (1; the server default is 5)")
    p.add_argument("--server-workers", type=int, default=1, help="TESSERA_WORKERS of each instance (1)")
    p.add_argument("--pool-size", type=int, default=10, help="TESSERA_DATABASE_POOL_SIZE of each instance (10)")
    p.add_argument("--issuer", default="http://fleet.tessera.test", help="TESSERA_ISSUER of both instances")
    p.add_argument("--log-level", default="warn", help="TESSERA_LOG_LEVEL (warn)")
    p.add_argument("--redis", metavar="URL", help="TESSERA_REDIS_URL of both instances (limits shared in Redis)")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--json", metavar="PATH", help="write the figures here as JSON")
    p.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs here before cleaning up")
    a = p.parse_args()
    if a.cut_at is None:
        a.cut_at = a.duration / 2
    if a.cut_at < 2 or a.cut_at + a.cut_for + a.recovery_limit + 2 > a.duration:
        p.error("need 2 <= --cut-at and --cut-at + --cut-for + --recovery-limit + 2 <= --duration")
    if a.procs < 1 or a.threads < 1:
        p.error("--procs and --threads must be at least 1")
    return a


def build_binary():
    if os.environ.get("TESSERA_BIN"):
        path = os.environ["TESSERA_BIN"]
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"TESSERA_BIN={path} is not an executable")
        return path
    log("building the release binary (cargo build --release)…")
    subprocess.run(["cargo", "build", "--release", "--manifest-path", os.path.join(ROOT, "Cargo.toml")], check=True,
                   stdout=sys.stderr)
    return os.path.join(ROOT, "target", "release", "tessera")


def commit_of(binary):
    """The commit of the checkout the binary was built in (its directory's
    git), marked when that checkout has uncommitted changes to tracked files."""
    where = os.path.dirname(os.path.realpath(binary))

    def git(*argv):
        res = subprocess.run(["git", "-C", where, *argv], capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "-uno") else "")


def setup(fleet, env):
    """Users, resource server, clients and API keys, with the CLI; the
    person's consent given once in a browser session. Returns the settings
    the workers need."""
    cli = fleet.cli
    admin_email, user_email = "fleet-admin@bench.example", "fleet-user@bench.example"
    admin_password, user_password = os.urandom(12).hex(), os.urandom(12).hex()
    cli(env, "user", "create", "--email", admin_email, "--name", "Fleet admin", "--admin", "--password-stdin",
        stdin=admin_password)
    cli(env, "user", "create", "--email", user_email, "--name", "Fleet user", "--password-stdin", stdin=user_password)
    rs = json.loads(cli(env, "resource", "create", "--identifier", RESOURCE, "--name", "Fleet API", "--alg", "RS256",
                        "--scope", "read", "--json"))
    cc = json.loads(cli(env, "client", "create", "--name", "fleet-cc", "--scope", "read", "--audience", RESOURCE,
                        "--json"))
    web = json.loads(cli(env, "client", "create", "--name", "fleet-web", "--public", "--redirect-uri", REDIRECT,
                         "--scope", "read", "--audience", RESOURCE, "--json"))
    load_key = json.loads(cli(env, "key", "create", "--owner", admin_email, "--name", "fleet-load", "--mode", "test",
                              "--rate-limit", "1000000", "--json"))
    admin_key = json.loads(cli(env, "key", "create", "--owner", admin_email, "--name", "fleet-admin", "--mode", "test",
                               "--rate-limit", "1000000", "--json"))
    return {
        "rs_auth": basic(rs["id"], rs["secret"]),
        "cc_auth": basic(cc["client_id"], cc["client_secret"]),
        "web_client": web["client_id"],
        "api_key": load_key["key"],
        "admin_key": admin_key["key"],
        "user_email": user_email,
        "user_password": user_password,
    }


def sanity(hosts, s):
    """Each instance answers each kind once, as expected; the consent is
    given. Returns a token for the workers' first introspection."""
    http = Http(hosts, 10)
    sign_in(http, 0, s["user_email"], s["user_password"])
    query = authorize_query(s["web_client"])
    _, status, page, location, _ = http.request(0, "GET", f"/oauth/authorize?{query}", cookies=True)
    if status == 200:
        _, status, page, location, _ = http.form(0, "/oauth/consent", hidden_inputs(page.decode()) +
                                                 [("decision", "approve")], cookies=True)
    assert status == 302 and code_from(location), f"consent: {status} {location} {page[:300]!r}"
    token = None
    for inst in (0, 1):
        _, status, body, _, _ = http.form(inst, "/oauth/token", [("grant_type", "client_credentials"),
                                                                 ("resource", RESOURCE)], s["cc_auth"])
        assert status == 200, f"client credentials on instance {inst}: {status} {body[:300]!r}"
        token = json.loads(body)["access_token"]
        _, status, body, _, _ = http.form(1 - inst, "/oauth/introspect", [("token", token)], s["rs_auth"])
        assert status == 200 and json.loads(body)["active"], f"introspection: {status} {body[:300]!r}"
        _, status, body, _, _ = http.request(inst, "GET", "/v1/me", headers={"Authorization": f"Bearer {s['api_key']}"})
        assert status == 200, f"/v1/me on instance {inst}: {status} {body[:300]!r}"
        _, status, _, location, _ = http.request(inst, "GET", f"/oauth/authorize?{query}", cookies=True)
        code = code_from(location)
        assert status == 302 and code, f"authorize on instance {inst}: {status} {location}"
        _, status, body, _, _ = http.form(1 - inst, "/oauth/token", [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
            ("client_id", s["web_client"]), ("code_verifier", VERIFIER)])
        assert status == 200, f"code exchange on instance {1 - inst}: {status} {body[:300]!r}"
        _, status, body, _, _ = http.form(inst, "/oauth/introspect", [("token", json.loads(body)["access_token"])],
                                          s["rs_auth"])
        assert status == 200 and json.loads(body)["active"], f"introspection of a code token: {body[:300]!r}"
    return token


class KeyMaker(threading.Thread):
    """Creates an API key every `every` seconds, alternating instances."""

    def __init__(self, hosts, admin_key, every, t_start, t_end, timeout):
        super().__init__(daemon=True)
        self.http = Http(hosts, timeout)
        self.admin_key, self.every, self.t_start, self.t_end = admin_key, every, t_start, t_end
        self.recorder = Recorder()
        self.keys = []  # (key, id, start, inst)

    def run(self):
        n = 0
        next_at = self.t_start
        while True:
            now = time.monotonic()
            if next_at >= self.t_end:
                return
            if now < next_at:
                time.sleep(min(next_at - now, 0.5))
                continue
            inst = n % 2
            start, status, body, _, lat = self.http.post_json(inst, "/v1/api-keys", {"name": f"fleet-{n}"},
                                                              self.admin_key)
            data = field(body, "data") if status == 201 else None
            if status == 201 and not (isinstance(data, dict) and data.get("key")):
                status = 297
            self.recorder.add("api_key_create", inst, start, status, body, lat)
            if status == 201:
                self.keys.append((data["key"], data["id"], start, inst))
            n += 1
            next_at += self.every


class ReadyWatch(threading.Thread):
    """Polls /readyz on every instance every `every` seconds, and notes
    each instance's RSS as it goes."""

    def __init__(self, hosts, pids, every, t_start, t_end):
        super().__init__(daemon=True)
        self.http = Http(hosts, 10)
        self.pids, self.every, self.t_start, self.t_end = pids, every, t_start, t_end
        self.polls = []  # (start, inst, status, latency)
        self.rss = []  # (time, [kB per instance])

    def run(self):
        while time.monotonic() < self.t_start:
            time.sleep(0.01)
        while time.monotonic() < self.t_end:
            for inst in range(len(self.http.hosts)):
                start, status, _, _, lat = self.http.request(inst, "GET", "/readyz")
                self.polls.append((start, inst, status, lat))
            self.rss.append((time.monotonic(), [rss_kb(p) for p in self.pids]))
            time.sleep(self.every)

    def rss_at(self, t, inst):
        """The last RSS noted at or before `t`."""
        best = None
        for when, values in self.rss:
            if when > t:
                break
            best = values[inst]
        return best


def probe_recovery(hosts, admin_key, t_restore, limit):
    """From the restore on, per instance: the first /readyz 200 and the
    first successful write (an API key created). Returns per instance
    {ready, write, recovered} in seconds after the restore, and the keys."""
    results, keys = [None] * len(hosts), []

    def one(inst):
        http = Http(hosts, 10)
        ready = write = None
        attempts = 0
        while time.monotonic() - t_restore < limit and (ready is None or write is None):
            if ready is None:
                start, status, _, _, lat = http.request(inst, "GET", "/readyz")
                if status == 200:
                    ready = start + lat - t_restore
            if write is None:
                start, status, body, _, lat = http.post_json(inst, "/v1/api-keys", {"name": f"recovery-{inst}"},
                                                             admin_key)
                attempts += 1
                data = field(body, "data") if status == 201 else None
                if isinstance(data, dict) and data.get("key"):
                    write = start + lat - t_restore
                    keys.append((data["key"], data["id"], start, inst))
            if ready is None or write is None:
                time.sleep(0.05)
        both = None if ready is None or write is None else max(ready, write)
        results[inst] = {"readyz_s": ready, "write_s": write, "recovered_s": both, "write_attempts": attempts}

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(hosts))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results, keys


def check_rows(hosts, s, tokens, keys, timeout):
    """Introspects every kept token (as the resource server) and calls
    /v1/me with every created key, alternating instances."""
    failures = {"tokens": [], "keys": []}
    lock = threading.Lock()
    jobs = [("token", t) for t in tokens] + [("key", k) for k in keys]
    it = iter(enumerate(jobs))

    def worker():
        http = Http(hosts, timeout)
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            n, (what, item) = nxt
            inst = n % 2
            if what == "token":
                _, status, body, _, _ = http.form(inst, "/oauth/introspect", [("token", item[0])], s["rs_auth"])
                good = status == 200 and field(body, "active") is True
                if not good:
                    with lock:
                        failures["tokens"].append({"kind": item[2], "issued_by": "AB"[item[3]], "checked_on": "AB"[inst],
                                                   "status": status, "body": body[:300].decode("utf-8", "replace")})
            else:
                _, status, body, _, _ = http.request(inst, "GET", "/v1/me", headers={"Authorization": f"Bearer {item[0]}"})
                if status != 200:
                    with lock:
                        failures["keys"].append({"id": item[1], "created_on": "AB"[item[3]], "checked_on": "AB"[inst],
                                                 "status": status, "body": body[:300].decode("utf-8", "replace")})

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return failures


def run(args, fleet):
    fleet.bin = build_binary()
    commit = commit_of(fleet.bin)
    fleet.create_database()
    log(f"database {fleet.db_name} created; starting the proxy")
    proxy_port = fleet.start_proxy()
    env = fleet.env(proxy_port)
    fleet.cli(env, "migrate")
    settings = setup(fleet, env)
    log("set up with the CLI; starting instance A, then B")
    hosts = [fleet.start_server("A", env), fleet.start_server("B", env)]
    seed_token = sanity(hosts, settings)
    pids = [proc.pid for _, proc, *_ in fleet.servers]
    rss_start = [rss_kb(p) for p in pids]
    log(f"A at {hosts[0]}, B at {hosts[1]}, proxy at 127.0.0.1:{proxy_port}; "
        f"load {args.duration:g} s, cut at {args.cut_at:g} s for {args.cut_for:g} s")

    workers = args.procs * args.threads
    t_start = time.monotonic() + 3  # time for the processes to start and sign in
    t_end = t_start + args.duration
    planned_cut = (t_start + args.cut_at, t_start + args.cut_at + args.cut_for)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    cfg = dict(settings, hosts=hosts, timeout=args.timeout, t_start=t_start, t_end=t_end, seed_token=seed_token,
               keep=int(args.keep * 0.75), keep_near=args.keep - int(args.keep * 0.75), workers=workers,
               cut=planned_cut)
    for n in range(args.procs):
        p = ctx.Process(target=load_proc, args=(dict(cfg, first_tid=n * args.threads), args.threads, out), daemon=True)
        p.start()
        fleet.procs.append(p)
    keymaker = KeyMaker(hosts, settings["admin_key"], args.key_every, t_start, t_end, args.timeout)
    watch = ReadyWatch(hosts, pids, 0.25, t_start, t_end)
    keymaker.start()
    watch.start()

    while time.monotonic() < planned_cut[0]:
        time.sleep(0.01)
    t_cut = time.monotonic()
    _, cut_conns = fleet.proxy_command("cut")
    t_cut_done = time.monotonic()  # every connection closed by now
    log(f"database cut ({cut_conns} open connections closed)")
    while time.monotonic() < planned_cut[1]:
        time.sleep(0.01)
    t_restore = time.monotonic()
    _, refused = fleet.proxy_command("restore")
    log(f"database restored ({refused} connections refused during the cut); probing recovery")
    recovery, recovery_keys = probe_recovery(hosts, settings["admin_key"], t_restore, max(30.0, args.recovery_limit * 3))
    times = [r["recovered_s"] for r in recovery]
    recovered_s = None if None in times else max(times)
    t_recovered = t_restore + (recovered_s if recovered_s is not None else 30)
    log(f"recovered after {recovered_s if recovered_s is None else round(recovered_s, 3)} s; load continues")

    results = [out.get() for _ in fleet.procs]
    for p in fleet.procs:
        p.join()
    keymaker.join()
    watch.join()
    t_stop = time.monotonic()
    rss_end = [rss_kb(p) for p in pids]
    proxy_stats = fleet.proxy_command("stats")[1]

    # Every request, from the workers and the key maker.
    records, samples, tokens, errors, retries = [], {}, [], [], 0
    for r in results + [{
        "start": keymaker.recorder.start, "latency": keymaker.recorder.latency, "kind": keymaker.recorder.kind,
        "inst": keymaker.recorder.inst, "status": keymaker.recorder.status, "samples": keymaker.recorder.samples,
        "tokens": [], "errors": [], "retries": keymaker.http.retries,
    }]:
        records.extend(zip(r["start"], r["latency"], (KINDS[k] for k in r["kind"]), r["status"]))
        for key, (n, first) in r["samples"].items():
            if key not in samples:
                samples[key] = [n, first]
            else:
                samples[key][0] += n
                if first[0] < samples[key][1][0]:
                    samples[key][1] = first
        tokens.extend(r["tokens"])
        errors.extend(r["errors"])
        retries += r["retries"]
    load_seconds = t_end - t_start
    figures = summarize(records, KINDS, (t_cut, t_cut_done, t_restore, t_recovered), args.hang, load_seconds)

    created_keys = keymaker.keys + recovery_keys
    log(f"load done; checking {len(tokens)} tokens and {len(created_keys)} API keys")
    failures = check_rows(hosts, settings, tokens, created_keys, args.timeout)

    # /readyz during the cut and outside it.
    readyz = {}
    for inst, name in enumerate("AB"):
        polls = [(s, st, lat) for s, i, st, lat in watch.polls if i == inst]
        # Started once every connection was closed, answered before the restore.
        during = [(st, lat) for s, st, lat in polls if t_cut_done <= s and s + lat < t_restore]
        outside = [(st, lat) for s, st, lat in polls if s + lat < t_cut or s > t_recovered]
        readyz[name] = {
            "polls_during_cut": len(during),
            "503_during_cut": sum(1 for st, _ in during if st == 503),
            "other_during_cut": sorted({st for st, _ in during if st != 503}),
            "max_ms_during_cut": ms(max((lat for _, lat in during), default=None)),
            "polls_outside": len(outside),
            "non_200_outside": sum(1 for st, _ in outside if st != 200),
            # Each poll from 2 s before the cut to 2 s after the restore:
            # [start, s after the cut began; status; latency, ms].
            "polls_around_cut": [[round(s - t_cut, 3), st, ms(lat)] for s, st, lat in polls
                                 if t_cut - 2 <= s <= t_restore + 2],
        }

    fleet.stop_servers()
    logs = {name: scan_log(err) for name, _, _, _, err in fleet.servers}
    near = [t for t in tokens if planned_cut[0] - 5 <= t[1] < t_cut]
    last_second = [t for t in tokens if t_cut - 1 <= t[1] < t_cut]
    during = [t for t in tokens if t_cut <= t[1] < t_restore]
    report = {
        "commit": commit,
        "binary": fleet.bin,
        "cores": os.cpu_count(),
        "settings": {
            "duration_s": args.duration, "cut_at_s": args.cut_at, "cut_for_s": args.cut_for,
            "workers": workers, "procs": args.procs, "threads": args.threads, "key_every_s": args.key_every,
            "hang_s": args.hang, "timeout_s": args.timeout, "recovery_limit_s": args.recovery_limit,
            "server_workers": args.server_workers, "pool_size": args.pool_size,
            "database_connect_timeout_s": args.connect_timeout, "issuer": args.issuer,
        },
        "timeline_s": {
            "cut": round(t_cut - t_start, 3), "restore": round(t_restore - t_start, 3),
            "recovered": None if recovered_s is None else round(t_restore + recovered_s - t_start, 3),
            "load_end": round(t_end - t_start, 3), "all_done": round(t_stop - t_start, 3),
        },
        "kinds": {k: figures[k] for k in KINDS},
        "overall": figures["overall"],
        "fault": {
            "proxy_connections_closed_at_cut": cut_conns,
            "proxy_connections_refused_during_cut": refused,
            "proxy_connections_total": proxy_stats.get("accepted"),
            "requests_during_cut": figures["overall"]["cut"]["count"],
            "2xx_during_cut": figures["overall"]["cut"]["2xx"],
            "2xx_started_and_answered_inside_cut": figures["overall"]["cut"]["2xx_inside"],
            "503_during_cut": figures["overall"]["cut"]["503"],
            "500_during_cut": figures["overall"]["cut"]["500"],
            "hangs_during_cut": figures["overall"]["cut"]["hangs"],
            "timeouts_during_cut": figures["overall"]["cut"]["timeouts"],
            "time_to_503_max_ms": figures["overall"]["cut"]["fail_max_ms"],
            "time_to_503_p99_ms": figures["overall"]["cut"]["fail_p99_ms"],
            "readyz": readyz,
            "cut_confirmed_after_ms": ms(t_cut_done - t_cut),
            "recovery_s": None if recovered_s is None else round(recovered_s, 3),
            "recovery_per_instance": {n: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                                      for n, r in zip("AB", recovery)},
            "5xx_during_recovery": figures["overall"]["recovery"]["5xx"],
        },
        "rows": {
            "tokens_checked": len(tokens), "tokens_issued_in_5s_before_cut": len(near),
            "tokens_issued_in_1s_before_cut": len(last_second),
            "tokens_issued_during_cut": len(during),
            "tokens_failed": len(failures["tokens"]), "token_failures": failures["tokens"][:20],
            "api_keys_checked": len(created_keys), "api_keys_failed": len(failures["keys"]),
            "api_key_failures": failures["keys"][:20],
            "api_keys_created_on": {n: sum(1 for k in created_keys if k[3] == i) for i, n in enumerate("AB")},
        },
        "rss_kb": {n: {
            "start": rss_start[i], "before_cut": watch.rss_at(t_cut, i), "at_restore": watch.rss_at(t_restore, i),
            "end": rss_end[i], "max": max((v[i] or 0 for _, v in watch.rss), default=None),
            "every_10s": [v[i] for n_, (_, v) in enumerate(watch.rss) if n_ % 40 == 0],
        } for i, n in enumerate("AB")},
        "server_logs": logs,
        "answers_not_ok": [
            {"kind": k, "status": st, "count": n, "first_at_s": round(first[0] - t_start, 3), "instance": "AB"[first[1]],
             "latency_ms": ms(first[2]), "body": first[3]}
            for (k, st), (n, first) in sorted(samples.items(), key=lambda kv: kv[1][1][0])
        ],
        "keepalive_resends": retries,
        "worker_errors": errors,
    }
    reasons = []
    o = figures["overall"]
    if o["normal"]["5xx"]:
        reasons.append(f"{o['normal']['5xx']} 5xx outside the cut")
    if o["500_total"]:
        reasons.append(f"{o['500_total']} answers 500")
    if o["hangs_total"]:
        reasons.append(f"{o['hangs_total']} hangs (> {args.hang:g} s)")
    if recovered_s is None or recovered_s > args.recovery_limit:
        reasons.append(f"recovery {recovered_s} s > {args.recovery_limit:g} s")
    if failures["tokens"] or failures["keys"]:
        reasons.append(f"rows lost: {len(failures['tokens'])} tokens, {len(failures['keys'])} API keys")
    unexpected = o["normal"]["unexpected"] + o["cut"]["unexpected"] + o["recovery"]["unexpected"]
    if unexpected:
        reasons.append(f"{unexpected} unexpected answers (4xx, inactive or invalid)")
    transport = o["normal"]["transport"] + o["cut"]["transport"] + o["normal"]["timeouts"] + o["cut"]["timeouts"]
    if transport:
        reasons.append(f"{transport} transport errors or timeouts")
    if errors:
        reasons.append(f"{len(errors)} worker set-up errors")
    for name, r in readyz.items():
        if r["non_200_outside"]:
            reasons.append(f"/readyz of {name}: {r['non_200_outside']} non-200 outside the cut")
    report["verdict"] = {"pass": not reasons, "reasons": reasons}
    return report


def fmt(v, width, digits=1):
    if v is None:
        return f"{'-':>{width}}"
    if isinstance(v, float):
        return f"{v:>{width}.{digits}f}"
    return f"{v:>{width}}"


def print_report(r):
    s = r["settings"]
    print(f"Tessera fleet (issue #14): commit {r['commit']}, {r['cores']} cores, binary {r['binary']}")
    print(f"two instances (TESSERA_WORKERS={s['server_workers']}, pool {s['pool_size']}, "
          f"connect timeout {s['database_connect_timeout_s']} s) on one PostgreSQL database through a cuttable proxy; "
          f"{s['workers']} load workers ({s['procs']} processes x {s['threads']} threads), an API key every "
          f"{s['key_every_s']:g} s")
    t = r["timeline_s"]
    print(f"load {s['duration_s']:g} s; cut at {t['cut']:.1f} s, restored at {t['restore']:.1f} s, "
          f"recovered at {t['recovered']} s; hang = slower than {s['hang_s']:g} s")
    print()
    head = (f"{'request':<40} {'count':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} "
            f"{'5xx out':>7} {'2xx cut':>7} {'503 cut':>7} {'5xx rec':>7} {'500':>4} {'hang':>4}")
    print(head)
    for key in KINDS + ["overall"]:
        k = r["kinds"].get(key) or r["overall"]
        print(f"{k['label']:<40} {k['count']:>8} {fmt(k['rps'], 7)} {fmt(k['p50_ms'], 7)} {fmt(k['p99_ms'], 7)} "
              f"{fmt(k['max_ms'], 8)} {k['normal']['5xx']:>7} {k['cut']['2xx']:>7} {k['cut']['503']:>7} "
              f"{k['recovery']['5xx']:>7} {k['500_total']:>4} {k['hangs_total']:>4}")
    print("(5xx out: outside the cut and the recovery; cut: requests overlapping the cut; "
          "rec: started between the restore and the recovery)")
    print()
    f = r["fault"]
    o = r["overall"]["cut"]
    print(f"during the cut ({s['cut_for_s']:g} s, {f['proxy_connections_closed_at_cut']} database connections closed, "
          f"{f['proxy_connections_refused_during_cut']} refused): {o['count']} requests: {o['2xx']} answered as usual "
          f"({o['2xx_inside']} of them started and answered inside the cut), "
          f"{o['503']} 503, {o['500']} 500, {o['5xx_other']} other 5xx, {o['unexpected']} other answers, "
          f"{o['timeouts']} timeouts, {o['transport']} transport errors, {o['hangs']} hangs")
    print("  (requests overlapping the cut; \"inside\": started once every connection was closed, answered before the "
          "restore)")
    print(f"  time to fail (requests that failed during the cut): p50 {o['fail_p50_ms']} ms, p99 {o['fail_p99_ms']} ms, "
          f"max {o['fail_max_ms']} ms")
    for name, rz in f["readyz"].items():
        print(f"  /readyz {name}: {rz['polls_during_cut']} polls inside the cut, {rz['503_during_cut']} answered 503"
              f"{', others: ' + str(rz['other_during_cut']) if rz['other_during_cut'] else ''}, slowest "
              f"{rz['max_ms_during_cut']} ms; {rz['non_200_outside']} of {rz['polls_outside']} polls outside not 200")
    for name, rec in f["recovery_per_instance"].items():
        print(f"  recovery {name}: /readyz 200 after {rec['readyz_s']} s, first write after {rec['write_s']} s "
              f"({rec['write_attempts']} attempts)")
    print(f"  time to recover (both instances ready and writing): {f['recovery_s']} s "
          f"(limit {s['recovery_limit_s']:g} s); 5xx between restore and recovery: {f['5xx_during_recovery']}")
    w = r["rows"]
    print()
    print(f"rows: {w['tokens_checked']} access tokens introspected after the run ({w['tokens_issued_in_5s_before_cut']} "
          f"issued in the 5 s before the cut, {w['tokens_issued_in_1s_before_cut']} in the last second, "
          f"{w['tokens_issued_during_cut']} during it): {w['tokens_failed']} not active; "
          f"{w['api_keys_checked']} API keys created during the run (A {w['api_keys_created_on']['A']}, "
          f"B {w['api_keys_created_on']['B']}) called /v1/me: {w['api_keys_failed']} failed")
    for fail in w["token_failures"][:5] + w["api_key_failures"][:5]:
        print(f"  lost: {fail}")
    print()
    def mib(kb):
        return "-" if kb is None else f"{kb / 1024:.1f}"

    for name, rss in r["rss_kb"].items():
        print(f"RSS {name} (MiB): {mib(rss['start'])} after set-up, {mib(rss['before_cut'])} before the cut, "
              f"{mib(rss['at_restore'])} at the restore, {mib(rss['end'])} at the end (max {mib(rss['max'])})")
    for name, lg in r["server_logs"].items():
        print(f"log {name}: {lg['levels'] or 'empty'}")
        for line in lg["top"][:5]:
            print(f"  {line['count']:>6} x {line['line']}")
    if r["answers_not_ok"]:
        print()
        print("answers other than the expected one (each kind and status once, the first one seen):")
        for a in r["answers_not_ok"]:
            body = " ".join(a["body"].split())[:220]
            print(f"  {a['kind']} {a['status']} x{a['count']} (first at {a['first_at_s']} s on {a['instance']}, "
                  f"{a['latency_ms']} ms): {body}")
    if r["keepalive_resends"]:
        print(f"(requests sent again after the server closed an idle keep-alive connection: {r['keepalive_resends']})")
    for e in r["worker_errors"]:
        print(f"worker error: {e}")
    print()
    v = r["verdict"]
    print("PASS" if v["pass"] else "FAIL: " + "; ".join(v["reasons"]))


def main():
    args = parse_args()
    fleet = Fleet(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, on_signal)  # even when started with SIGINT ignored (in the background)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        report = run(args, fleet)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        fleet.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        log(f"figures written to {args.json}")
    return 0 if report["verdict"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
