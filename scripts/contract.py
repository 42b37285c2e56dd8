#!/usr/bin/env python3
"""Contract fuzzing: schemathesis against a live iMark, as each role in turn.

Starts the ЧЗ emulator and the API on free ports against a fresh database, onboards a tenant with
a store and an auditor, then lets schemathesis send generated requests from openapi.yaml with each
role's token. It fails on any 5xx and on any answer that breaks the document. Bounded in examples
and time; everything it starts stops with it. Run from the repository root after a build.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMATHESIS = os.environ.get("SCHEMATHESIS", os.path.join(ROOT, ".venv", "bin", "schemathesis"))
ADMIN_URL = os.environ.get("IMARK_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "imark_contract"
EMULATOR_KEY = "sandbox-api-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_run(length):
    """A start port with `length` free ports after it."""
    for _ in range(100):
        start = free_port()
        if start + length >= 65535:
            continue
        try:
            sockets = []
            for port in range(start, start + length):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            for s in sockets:
                s.close()
            return start
        except OSError:
            for s in sockets:
                s.close()
    raise SystemExit("contract: no free ports")


def psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-qtAc", sql], check=True)


def call(method, url, token=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_ready(url, processes):
    for _ in range(600):
        if any(p.poll() is not None for p in processes):
            raise SystemExit("contract: a service stopped while starting")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"contract: {url} never answered")


def main():
    psql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DATABASE}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE

    hosts = free_run(3)
    discovery, control, api_port = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    platform_key = "imk_pl_" + secrets.token_urlsafe(32)
    environment = dict(
        os.environ,
        IMARK_DATABASE_URL=database_url,
        IMARK_REDIS_URL=os.environ.get("IMARK_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        IMARK_REDIS_PREFIX="imark-contract-" + secrets.token_hex(4),
        IMARK_LISTEN_ADDR=f"127.0.0.1:{api_port}",
        IMARK_PLATFORM_KEY=platform_key,
        IMARK_JWT_KEYS="c1:" + secrets.token_urlsafe(32),
        IMARK_MASTER_KEYS="m1:" + __import__("base64").b64encode(secrets.token_bytes(32)).decode(),
        IMARK_API_KEY_PEPPER=secrets.token_urlsafe(32),
        IMARK_TRUEMARK_ALLOW_LOCAL_URLS="true",
        IMARK_TRUEMARK_CHECK_TIMEOUT_MS="500",
        RUST_LOG="warn",
    )
    logs = open(os.path.join(ROOT, "target", "contract-services.log"), "w")
    processes = [
        subprocess.Popen(
            [os.path.join(ROOT, "target/debug/truemark-sandbox"),
             "--discovery-port", str(discovery), "--host-port", str(hosts),
             "--control-port", str(control)],
            stdout=logs, stderr=logs),
        subprocess.Popen([os.path.join(ROOT, "target/debug/imark-api"), "serve"],
                         env=environment, stdout=logs, stderr=logs),
    ]
    try:
        wait_ready(f"{api}/readyz", processes)
        tokens = onboard(api, platform_key, f"http://127.0.0.1:{discovery}")
        failed = False
        # The platform goes last: it may disable the tenant the others act in.
        for role in ["store", "auditor", "hq_admin", "platform"]:
            print(f"contract: fuzzing as {role}", flush=True)
            run = subprocess.run([
                SCHEMATHESIS, "run", os.path.join(ROOT, "openapi.yaml"),
                "--url", api,
                "-H", f"Authorization: Bearer {tokens[role]}",
                "--checks", "not_a_server_error,response_schema_conformance,"
                            "content_type_conformance",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", os.environ.get("CONTRACT_MAX_EXAMPLES", "15"),
                "--max-time", os.environ.get("CONTRACT_MAX_SECONDS", "90"),
                "--seed", "1944",
                "--generation-allow-x00", "true",
                # Fuzzed ЧЗ URLs would send documents to addresses that are not ours.
                "--exclude-path", "/truemark",
                "--suppress-health-check", "all",
                "--request-timeout", "30",
                "--workers", "1",
            ], cwd=ROOT)
            failed = failed or run.returncode != 0
        return 1 if failed else 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                process.kill()
        psql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def onboard(api, platform_key, emulator):
    platform = call("GET", f"{api}/token", headers={"X-API-Key": platform_key})["access_token"]
    tenant = call("POST", f"{api}/tenants", platform, {"name": "Contract", "inn": "7701234567"})
    hq_key = tenant["hq_key"]["api_key"]
    hq = call("GET", f"{api}/token", headers={"X-API-Key": hq_key})["access_token"]
    store = call("POST", f"{api}/stores", hq, {"code": "c-1", "name": "Contract store"})
    call("PUT", f"{api}/truemark", hq,
         {"api_key": EMULATOR_KEY, "base_url": emulator, "region": "contract"})
    store_key = call("POST", f"{api}/keys", hq,
                     {"role": "store", "name": "pos", "store_id": store["id"]})["api_key"]
    auditor_key = call("POST", f"{api}/keys", hq,
                       {"role": "auditor", "name": "aud", "store_ids": [store["id"]]})["api_key"]
    token = lambda key: call("GET", f"{api}/token", headers={"X-API-Key": key})["access_token"]
    return {
        "platform": platform,
        "hq_admin": hq,
        "store": token(store_key),
        "auditor": token(auditor_key),
    }


if __name__ == "__main__":
    sys.exit(main())
