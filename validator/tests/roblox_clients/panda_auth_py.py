"""Drives the real, unmodified PyPI package PandaAuthPy 1.0.2 (MIT) against the server under test.

PandaAuthPy.auth does `import requests` and calls `requests.get(url)` with hard-coded
https://pandadevelopment.net URLs. This script swaps the module's `requests` for a namespace whose
`get()` sends pandadevelopment.net (and its new./utility./auth. subdomains) to KEYWARD_BASE, lets
loopback through, and refuses every other host, api.ipify.org included, with a
requests.ConnectionError. The library's public IP is therefore "BAD_REQUEST" and the HWID it sends
is always sha256("BAD_REQUEST") =
1bb80880a6e9556d1c2b8f33f3bbdcd0faa322d9da8b091c5f0c57d4488a18fd.

Environment:
  KEYWARD_BASE     the server under test, e.g. http://127.0.0.1:8080 (required, loopback)
  KEYWARD_SERVICE  the service id
  KEYWARD_KEY      the key
  KEYWARD_STEPS    comma-separated, from: validate_key, validate_premium_key, get_key, hwid
                   (default "validate_key")

Prints one JSON object per step, {"step", "ok", "result": [return value] | "error",
"http": [exchanges]}, then
{"step": "done", "ok": true}. What the library itself prints goes to stderr.
"""

import contextlib
import hashlib
import json
import os
import sys
import types
import urllib.parse

import requests

import PandaAuthPy.auth as panda_auth

REWRITTEN = {
    "pandadevelopment.net",
    "new.pandadevelopment.net",
    "utility.pandadevelopment.net",
    "auth.pandadevelopment.net",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BAD_REQUEST_HWID = hashlib.sha256(b"BAD_REQUEST").hexdigest()



def is_loopback(host):
    return host in LOOPBACK or host.startswith("127.")


BASE = os.environ["KEYWARD_BASE"].rstrip("/")
if not is_loopback(urllib.parse.urlsplit(BASE).hostname or ""):
    sys.exit(f"KEYWARD_BASE must be on loopback, not {BASE}")

# Every exchange of the current step.
HTTP = []


def route(url):
    """The URL the request really goes to, or None when the host is refused."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in REWRITTEN:
        # The path and the raw query are kept byte for byte (the library does not encode them).
        rest = url[len(parts.scheme) + 3 + len(parts.netloc):] or "/"
        if not rest.startswith("/"):
            rest = "/" + rest
        return BASE + rest
    if is_loopback(host):
        return url
    return None


def get(url, **kwargs):
    target = route(url)
    entry = {"method": "GET", "url": url, "target": target}
    HTTP.append(entry)
    if target is None:
        entry["refused"] = "host not reachable from the stand-in"
        entry["status"] = 0
        raise requests.ConnectionError(f"stand-in: {url} is not reachable")
    kwargs.setdefault("timeout", 20)
    # A proxy from the environment must not get in between.
    with requests.Session() as s:
        s.trust_env = False
        # Prepared as requests.get() would (the session's default headers), then given the URL
        # exactly as the library built it: preparing would re-quote the query.
        req = s.prepare_request(requests.Request("GET", target, headers=kwargs.pop("headers", None)))
        req.url = target
        resp = s.send(req, **kwargs)
    entry["status"] = resp.status_code
    entry["response"] = resp.text
    return resp


# Everything else the library uses from `requests` (RequestException) is the real thing.
panda_auth.requests = types.SimpleNamespace(
    get=get,
    RequestException=requests.RequestException,
    ConnectionError=requests.ConnectionError,
    exceptions=requests.exceptions,
)


def main():
    auth = panda_auth.PandaAuth()
    key = os.environ.get("KEYWARD_KEY", "")
    service = os.environ.get("KEYWARD_SERVICE", "")
    steps = {
        "validate_key": lambda: auth.validate_key(key, service),
        "validate_premium_key": lambda: auth.validate_premium_key(key, service),
        "get_key": lambda: auth.get_key(service),
        "hwid": lambda: auth.encode_ip(auth.get_ip()),
    }
    names = [s for s in os.environ.get("KEYWARD_STEPS", "validate_key").split(",") if s.strip()]
    for name in names:
        HTTP.clear()
        line = {"step": name.strip()}
        try:
            # The library prints its errors; keep stdout for our JSON lines.
            with contextlib.redirect_stdout(sys.stderr):
                # A list of the return values, as the Lua drivers print them.
                line["result"] = [steps[name.strip()]()]
            line["ok"] = True
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            line["ok"] = False
            line["error"] = f"{type(e).__name__}: {e}"
        line["http"] = list(HTTP)
        print(json.dumps(line), flush=True)
    print(json.dumps({"step": "done", "ok": True, "bad_request_hwid": BAD_REQUEST_HWID}), flush=True)


if __name__ == "__main__":
    main()
