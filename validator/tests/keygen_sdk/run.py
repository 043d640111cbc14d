#!/usr/bin/env python3
"""Drives the real, unmodified PyPI package keygen-sdk 1.0.0 (module `keygen`) against Keyward's
Keygen facade, through the SDK's public API only. Started by `validator/tests/keygen_sdk.rs`.

What keygen-sdk 1.0.0 does (read from its source: keygen/{client,license,machine,files,verifier}.py):

Config: module attributes (`keygen.X = ...`) stored in one Settings object and read by every
`Client()`, which is built afresh for each call: api_url (default https://api.keygen.sh;
http:// allowed), api_version "1.8", api_prefix "v1", account, product, environment,
license_key, token, public_key (hex of the raw 32-byte Ed25519 key), signature_scheme "ed25519",
max_clock_drift (5 min), http_client (a requests.Session), timeout (30 s).
URL: `{api_url}/{api_prefix}/{path}`. `account` is put in the path only when api_url is exactly
https://api.keygen.sh, so an account-scoped path needs api_prefix="v1/accounts/<id>". Path ids
are quote(safe="")d. Query keys are sorted, None/"" values dropped, bools written true/false,
and the query is urlencoded ("+" becomes %2B, "," becomes %2C).
Headers on every request: Accept: application/vnd.api+json; Keygen-Version: 1.8;
Authorization: License <key>; Keygen-Accept-Signature: algorithm="ed25519";
User-Agent: keygen/1.8 sdk/1.0.0 python/X linux/amd64. Content-Type: application/vnd.api+json
goes only with a body (compact JSON). Redirects are not followed.
Answers: 429 gives RateLimitError and >=500 gives APIError, both without a signature check.
Anything else is verified when public_key is set. The digest (Keygen-Digest, else Digest) must
be sha-256=b64(sha256(body)). The date (Keygen-Date, else Date) must be no older than 5 min.
Keygen-Signature needs algorithm="ed25519" and signature="<b64>", over
"(request-target): <method> <path?query as sent>\nhost: <netloc>\ndate: <date>\ndigest: <digest>".
Then an empty body is accepted (404 gives NotFoundError, >=400 gives APIError); any other body
must be a JSON object. errors[0].code picks the exception: on 403, LICENSE_SUSPENDED/_EXPIRED/
_NOT_ALLOWED and TOKEN_*, else NotAuthorizedError; FINGERPRINT_TAKEN gives
MachineAlreadyActivatedError; MACHINE_LIMIT_EXCEEDED gives MachineLimitExceededError;
MACHINE_HEARTBEAT_DEAD gives HeartbeatDeadError; LICENSE_INVALID gives LicenseKeyError;
NOT_FOUND (or a 404) gives NotFoundError.
Calls:
- keygen.me(): GET me. data must be an object with type "licenses". Read: id, attributes
  name/key/expiry/scheme/requireHeartbeat/lastValidated/created/updated/metadata, and
  relationships.policy.data.id.
- keygen.validate(fp): me(), then POST licenses/{id}/actions/validate with
  {"meta":{"scope":{"fingerprint":fp,"product":<product>}}} (no nonce, no key). Read: data
  (the license is reloaded from it) and meta.code/valid/detail/scope. Only code VALID passes.
  NO_MACHINE, NO_MACHINES and FINGERPRINT_SCOPE_MISMATCH give LicenseNotActivatedError, carrying
  .license and .result.
- license.activate(fp): POST machines {"data":{"type":"machines","attributes":{fingerprint,
  platform "linux/amd64", cores, hostname},"relationships":{"license":{"data":{"type":
  "licenses","id":<id>}}}}}. Read: data id, attributes fingerprint/name/hostname/platform/ip/
  cores/requireHeartbeat/heartbeatStatus/heartbeatDuration/created/updated/metadata, and
  relationships.license.data.id.
- license.machine(id_or_fp): GET machines/{id}. machine.deactivate(): DELETE machines/{id}, any 2xx.
- machine.ping(): POST machines/{id}/actions/ping, no body and no Content-Type; the machine is
  reloaded from data. machine.monitor() is ping() plus a thread pinging every heartbeatDuration - 30 s.
- license.checkout(include=("entitlements",), ttl=None, encrypt=True): POST
  licenses/{id}/actions/check-out?algorithm=aes-256-gcm%2Bed25519&encrypt=true&include=entitlements[&ttl=N],
  no body. Read: attributes certificate/issued/expiry/ttl and relationships.license.data.id.
  machine.checkout() is the same on machines/{id}/actions/check-out, with
  include=license%2Clicense.entitlements.
- File.verify(): PEM-like armour "-----BEGIN LICENSE FILE-----" (or MACHINE FILE) around
  base64 (padded; whitespace ignored) of JSON {enc, sig, alg}. alg is "<aes-256-gcm|base64>+ed25519".
  The check is ed25519 over "license/"+enc (or "machine/"+enc).
  decrypt(k): enc is b64(ciphertext).b64(iv).b64(tag), with a 16-byte tag, AES-GCM key
  sha256(k) and no AAD. k is the license key, or license key + fingerprint for a machine file.
  decode(): base64. The dataset needs a data object; it reads meta.issued/expiry/ttl and, from
  included, "licenses" (machine file) and "entitlements". It is refused when issued is more
  than 5 min in the future, or when ttl != 0 and it has expired.

Inputs (environment): KEYGEN_API_URL (http://127.0.0.1:PORT/keygen), KEYGEN_PUBLIC_KEY,
KEYGEN_LICENSE_KEY, KEYGEN_ACCOUNT, KEYGEN_PRODUCT, KEYGEN_FINGERPRINT, KEYGEN_SCENARIO
(lifecycle | unknown-key | suspended | foreign-public-key) and, optionally, KEYGEN_API_PREFIX.
Output: one JSON line per step on stdout, {"step", "ok", ...outcome, "calls": [[method, target,
status], ...]}, and a final {"step": "done"}. On the first unexpected result the line has
"ok": false, a message goes to stderr, and the exit status is 1 (2 for bad inputs).
"""

import json
import os
import sys
from datetime import datetime, timezone

import keygen

SDK_VERSION = "1.0.0"

# Every HTTP exchange the SDK makes during the current step: (method, target, status).
_calls = []


def _trace(response, *args, **kwargs):
    _calls.append([response.request.method, response.request.path_url, response.status_code])


def _take_calls():
    calls = list(_calls)
    _calls.clear()
    return calls


def emit(step, **fields):
    line = {"step": step, "ok": True}
    line.update(fields)
    line["calls"] = _take_calls()
    print(json.dumps(line, sort_keys=True, default=str), flush=True)


def describe(err):
    """What an SDK exception says: its class, the API error and the HTTP answer behind it."""
    info = {"exception": type(err).__name__, "message": str(err)}
    for attr in ("code", "detail", "title", "source"):
        value = getattr(err, attr, None)
        if value is not None:
            info[attr] = value
    result = getattr(err, "result", None)
    if result is not None:
        info["result"] = {"code": result.code, "valid": result.valid, "detail": result.detail}
    response = getattr(err, "response", None)
    if response is not None:
        info["status"] = response.status
        info["body"] = response.tldr()
    if err.__cause__ is not None and err.__cause__ is not err:
        cause = err.__cause__
        info["cause"] = {"exception": type(cause).__name__, "message": str(cause)}
        code = getattr(cause, "code", None)
        if code is not None:
            info["cause"]["code"] = code
    return info


def fail(step, message, err=None):
    line = {"step": step, "ok": False, "error": message}
    if err is not None:
        line.update(describe(err))
    line["calls"] = _take_calls()
    print(json.dumps(line, sort_keys=True, default=str), flush=True)
    sys.stderr.write(f"keygen-sdk {SDK_VERSION}: step {step!r} failed: {message}\n")
    if err is not None:
        sys.stderr.write(json.dumps(describe(err), sort_keys=True, default=str) + "\n")
    sys.exit(1)


def call(step, fn, expect=None):
    """Runs one SDK call. With `expect`, that exception is the expected outcome and is returned."""
    try:
        value = fn()
    except Exception as err:  # noqa: BLE001 - any SDK error is reported, not raised
        if expect is not None and isinstance(err, expect):
            return err
        wanted = f"expected {expect.__name__}, got " if expect is not None else ""
        fail(step, f"{wanted}{type(err).__name__}: {err}", err)
    if expect is not None:
        fail(step, f"expected {expect.__name__}, but the call succeeded: {value!r}")
    return value


def check(step, condition, message):
    if not condition:
        fail(step, message)


def last_status():
    """The HTTP status of the step's last exchange."""
    return _calls[-1][2] if _calls else None


def not_activated(step, inputs, license_id):
    """keygen.validate(fp) for a fingerprint with no machine: LicenseNotActivatedError."""
    err = call(step, lambda: keygen.validate(inputs["fingerprint"]), keygen.LicenseNotActivatedError)
    result = err.result
    check(step, result is not None, "LicenseNotActivatedError without a validation result")
    check(step, result.code == "NO_MACHINE", f"code {result.code!r}, expected NO_MACHINE")
    check(step, result.valid is False, f"valid {result.valid!r} with code {result.code}")
    check(step, err.license is not None and err.license.id == license_id,
          "the error does not carry the license")
    check(step, err.license.key == inputs["license_key"], "the license in the error has another key")
    scope = result.scope
    check(step, scope is not None, "meta.scope was sent but not echoed")
    check(step, scope.fingerprint == inputs["fingerprint"] and scope.product == inputs["product"],
          f"meta.scope echoed as {scope.raw!r}")
    emit(step, outcome=type(err).__name__, code=result.code, valid=result.valid,
         detail=result.detail, scope=scope.raw)
    return err.license


def lifecycle(inputs):
    fp, key = inputs["fingerprint"], inputs["license_key"]

    step = "me"
    me = call(step, keygen.me)
    check(step, me.type == "licenses" and me.id, f"me is {me.type!r} {me.id!r}, not a license")
    check(step, me.key == key, "me answered another license key")
    check(step, isinstance(me.attributes.get("metadata"), dict), "license metadata is not an object")
    emit(step, outcome="License", type=me.type, id=me.id, policy=me.policy_id,
         require_heartbeat=me.require_heartbeat)

    license = not_activated("validate-unactivated", inputs, me.id)

    step = "activate"
    machine = call(step, lambda: license.activate(fp))
    check(step, machine.id, "the machine has no id")
    check(step, machine.type == "machines", f"type {machine.type!r}")
    check(step, machine.fingerprint == fp, f"fingerprint {machine.fingerprint!r}")
    check(step, machine.license_id == license.id, "relationships.license does not name the license")
    check(step, machine.heartbeat_status == "NOT_STARTED",
          f"heartbeatStatus {machine.heartbeat_status!r}, expected NOT_STARTED")
    check(step, machine.require_heartbeat is False, "requireHeartbeat before any ping")
    check(step, last_status() == 201, f"status {last_status()}, expected 201")
    emit(step, outcome="Machine", id=machine.id, fingerprint=machine.fingerprint,
         license=machine.license_id, heartbeat_status=machine.heartbeat_status,
         require_heartbeat=machine.require_heartbeat, platform=machine.platform)

    step = "activate-again"
    err = call(step, lambda: license.activate(fp), keygen.MachineAlreadyActivatedError)
    emit(step, outcome=type(err).__name__, status=err.response.status if err.response else None)

    step = "activate-another"
    err = call(step, lambda: license.activate(fp + "-other"), keygen.MachineLimitExceededError)
    emit(step, outcome=type(err).__name__, status=err.response.status if err.response else None)

    step = "machine"
    found = call(step, lambda: license.machine(fp))
    check(step, found.id == machine.id, f"GET machines/<fingerprint> answered {found.id!r}")
    emit(step, outcome="Machine", id=found.id, fingerprint=found.fingerprint)

    step = "validate-activated"
    validated = call(step, lambda: keygen.validate(fp))
    result = validated.last_validation
    check(step, result is not None and result.code == "VALID" and result.valid is True,
          f"validation {result!r}")
    emit(step, outcome="License", code=result.code, valid=result.valid, detail=result.detail)

    step = "ping"
    call(step, machine.ping)
    check(step, machine.heartbeat_status == "ALIVE",
          f"heartbeatStatus {machine.heartbeat_status!r} after a ping, expected ALIVE")
    check(step, machine.require_heartbeat is True, "requireHeartbeat is false after a ping")
    check(step, machine.heartbeat_duration > 0, f"heartbeatDuration {machine.heartbeat_duration!r}")
    emit(step, outcome="Machine", heartbeat_status=machine.heartbeat_status,
         require_heartbeat=machine.require_heartbeat,
         heartbeat_duration=machine.heartbeat_duration,
         last_heartbeat=machine.attributes.get("lastHeartbeat"),
         next_heartbeat=machine.attributes.get("nextHeartbeat"))

    now = datetime.now(timezone.utc)

    step = "license-checkout"
    lic_file = call(step, license.checkout)
    check(step, lic_file.certificate.startswith("-----BEGIN LICENSE FILE-----\n"),
          "the certificate is not a LICENSE FILE")
    check(step, lic_file.license_id == license.id, "relationships.license does not name the license")
    check(step, lic_file.ttl > 0 and lic_file.issued and lic_file.expiry
          and lic_file.expiry > lic_file.issued, f"issued {lic_file.issued} expiry {lic_file.expiry} ttl {lic_file.ttl}")
    call(step, lic_file.verify)
    dataset = call(step, lambda: lic_file.decrypt(key))
    check(step, dataset.license.id == license.id and dataset.license.key == key,
          "the license file holds another license")
    check(step, dataset.ttl == lic_file.ttl, f"dataset ttl {dataset.ttl}, file ttl {lic_file.ttl}")
    emit(step, outcome="LicenseFile", verified=True, decrypted=True, ttl=lic_file.ttl,
         issued=lic_file.issued, expiry=lic_file.expiry, entitlements=len(dataset.entitlements))

    step = "license-checkout-plain"
    plain = call(step, lambda: license.checkout(encrypt=False, ttl=3600, include=()))
    call(step, plain.verify)
    dataset = call(step, plain.decode)
    check(step, dataset.license.id == license.id, "the license file holds another license")
    check(step, plain.ttl == 3600 and dataset.ttl == 3600, f"ttl {plain.ttl}/{dataset.ttl}, asked 3600")
    check(step, dataset.expiry is not None and dataset.expiry > now, f"expiry {dataset.expiry}")
    emit(step, outcome="LicenseFile", verified=True, decoded=True, ttl=plain.ttl)

    step = "machine-checkout"
    mac_file = call(step, machine.checkout)
    check(step, mac_file.certificate.startswith("-----BEGIN MACHINE FILE-----\n"),
          "the certificate is not a MACHINE FILE")
    check(step, mac_file.machine_id == machine.id, "relationships.machine does not name the machine")
    call(step, mac_file.verify)
    dataset = call(step, lambda: mac_file.decrypt(key + fp))
    check(step, dataset.machine.id == machine.id and dataset.machine.fingerprint == fp,
          "the machine file holds another machine")
    check(step, dataset.license.id == license.id, "the machine file does not include its license")
    emit(step, outcome="MachineFile", verified=True, decrypted=True, ttl=mac_file.ttl,
         license=dataset.license.id)

    step = "deactivate"
    call(step, machine.deactivate)
    check(step, last_status() == 204, f"status {last_status()}, expected 204")
    emit(step, outcome="None")

    not_activated("validate-deactivated", inputs, license.id)

    step = "machine-gone"
    err = call(step, lambda: license.machine(fp), keygen.NotFoundError)
    emit(step, outcome=type(err).__name__, status=err.response.status if err.response else None,
         code=err.code)


def rejected(expected, status=None, code=None):
    """keygen.validate(fp) fails on its first call (GET me) with `expected`."""

    def scenario(inputs):
        step = "validate"
        err = call(step, lambda: keygen.validate(inputs["fingerprint"]), expected)
        got = err.response.status if err.response is not None else None
        if status is not None:
            check(step, got == status, f"status {got}, expected {status}")
        # Mapped 403s keep the API error (and its code) as their cause.
        got_code = getattr(err, "code", None) or getattr(err.__cause__, "code", None)
        if code is not None:
            check(step, got_code == code, f"code {got_code!r}, expected {code}")
        emit(step, outcome=type(err).__name__, status=got, code=got_code)

    return scenario


SCENARIOS = {
    "lifecycle": lifecycle,
    # An unknown key: 401 LICENSE_INVALID, signed, and verified before it is mapped.
    "unknown-key": rejected(keygen.LicenseKeyError, 401, "LICENSE_INVALID"),
    # A suspended license: 403 LICENSE_SUSPENDED.
    "suspended": rejected(keygen.LicenseSuspendedError, 403, "LICENSE_SUSPENDED"),
    # Pinned to another public key: the SDK must refuse the very first answer.
    "foreign-public-key": rejected(keygen.ResponseSignatureInvalidError),
}


def inputs_from_env():
    names = {
        "api_url": "KEYGEN_API_URL",
        "public_key": "KEYGEN_PUBLIC_KEY",
        "license_key": "KEYGEN_LICENSE_KEY",
        "account": "KEYGEN_ACCOUNT",
        "product": "KEYGEN_PRODUCT",
        "fingerprint": "KEYGEN_FINGERPRINT",
        "scenario": "KEYGEN_SCENARIO",
    }
    missing = [var for var in names.values() if not os.environ.get(var)]
    if missing:
        sys.stderr.write(f"run.py: missing environment variables: {', '.join(missing)}\n")
        sys.exit(2)
    inputs = {field: os.environ[var] for field, var in names.items()}
    inputs["api_prefix"] = os.environ.get("KEYGEN_API_PREFIX", "")
    if inputs["scenario"] not in SCENARIOS:
        sys.stderr.write(f"run.py: unknown KEYGEN_SCENARIO {inputs['scenario']!r}; "
                         f"one of {', '.join(SCENARIOS)}\n")
        sys.exit(2)
    return inputs


def main():
    inputs = inputs_from_env()
    step = "sdk"
    check(step, keygen.__version__ == SDK_VERSION,
          f"keygen-sdk {keygen.__version__} imported from {keygen.__file__}, expected {SDK_VERSION}")
    keygen.api_url = inputs["api_url"]
    keygen.public_key = inputs["public_key"]
    keygen.license_key = inputs["license_key"]
    keygen.account = inputs["account"]
    keygen.product = inputs["product"]
    if inputs["api_prefix"]:
        keygen.api_prefix = inputs["api_prefix"]
    # With a public key set, the SDK verifies every answer below 500 other than a 429.
    check(step, keygen.public_key, "no public key: the SDK would skip signature checks")
    keygen.http_client.hooks["response"].append(_trace)
    emit(step, outcome="configured", version=keygen.__version__, api_url=keygen.api_url,
         api_prefix=keygen.api_prefix, signature_scheme=keygen.signature_scheme,
         scenario=inputs["scenario"])
    SCENARIOS[inputs["scenario"]](inputs)
    print(json.dumps({"step": "done", "ok": True, "scenario": inputs["scenario"]}), flush=True)


if __name__ == "__main__":
    main()
