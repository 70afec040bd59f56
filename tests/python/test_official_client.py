"""Drive a running Strongroom server through the official Databunker Pro
Python client (PyPI ``databunkerpro``, written against 0.1.7).

Required environment:
    STRONGROOM_URL          base URL, e.g. http://127.0.0.1:3000 (no /v2 suffix;
                            the client appends /v2/<Endpoint> itself)
    STRONGROOM_ROOT_TOKEN   root X-Bunker-Token of the default tenant
Optional:
    STRONGROOM_ROOT_TENANT  X-Bunker-Tenant to send with the root token
                            (default: none, so the header is omitted)
    STRONGROOM_HTTP_TIMEOUT seconds per HTTP request (default 30)

Run:  pytest -q tests/python/test_official_client.py

All traffic goes through ``databunkerpro.DatabunkerproAPI``. The test
does not make HTTP requests itself. It wraps ``requests.post``, which the
client calls once per API method, and that wrapper does only two things:
  * it adds a timeout (the client sets none and would hang forever on a
    stuck server), and
  * it records the HTTP status code and raw response body so the test can
    check the wire contract: 404/409 codes and the
    ``{"status":"error","message":...}`` shape. Client 0.1.7 never raises on
    HTTP errors. It returns the parsed JSON dict, so without the wrapper the
    status code could not be seen.
The request bytes the client sends are not modified.
"""

import json
import os
import secrets
from dataclasses import dataclass
from typing import Any, Callable, List, Optional
from urllib.parse import urlparse

import pytest
import requests

import databunkerpro
from databunkerpro import DatabunkerproAPI

TENANT_ORG = "Py Org"


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


def _env_problems() -> List[str]:
    problems = []
    url = os.environ.get("STRONGROOM_URL", "").strip()
    if not url:
        problems.append("STRONGROOM_URL is not set")
    else:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"STRONGROOM_URL is not an http(s) URL: {url!r}")
        if parsed.path.rstrip("/").endswith("/v2"):
            problems.append(
                "STRONGROOM_URL must not end in /v2 (the client appends /v2/ itself)"
            )
    if not os.environ.get("STRONGROOM_ROOT_TOKEN", "").strip():
        problems.append("STRONGROOM_ROOT_TOKEN is not set")
    return problems


def test_environment_is_configured():
    # This test fails (does not skip) when the server isn't configured.
    problems = _env_problems()
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def cfg():
    problems = _env_problems()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    return {
        "url": os.environ["STRONGROOM_URL"].strip(),
        "root_token": os.environ["STRONGROOM_ROOT_TOKEN"].strip(),
        "root_tenant": os.environ.get("STRONGROOM_ROOT_TENANT", "").strip(),
    }


# --------------------------------------------------------------------------
# wire observation (see module docstring)
# --------------------------------------------------------------------------


@dataclass
class Exchange:
    url: str
    request_body: Optional[str]
    status_code: int
    response_body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.response_body)
        except ValueError as e:
            raise AssertionError(
                f"{self.url}: HTTP {self.status_code} body is not JSON: "
                f"{self.response_body[:300]!r}"
            ) from e


WIRE: List[Exchange] = []


@pytest.fixture(scope="module", autouse=True)
def _observe_wire():
    # Deliberately not dependent on cfg, so test_environment_is_configured
    # reports a plain FAILURE rather than a setup error.
    timeout = float(os.environ.get("STRONGROOM_HTTP_TIMEOUT", "30"))
    original_post = requests.post

    def observed_post(url, *args, **kwargs):
        kwargs.setdefault("timeout", timeout)
        resp = original_post(url, *args, **kwargs)
        WIRE.append(Exchange(url, kwargs.get("data"), resp.status_code, resp.content))
        return resp

    requests.post = observed_post
    try:
        yield
    finally:
        requests.post = original_post


@dataclass
class Outcome:
    what: str
    result: Any  # whatever the client method returned (None if it raised)
    raised: Optional[BaseException]
    wire: Exchange


def call(what: str, fn: Callable, *args, **kwargs) -> Outcome:
    """Call one client method; capture its return value or exception plus the
    single HTTP exchange it caused."""
    WIRE.clear()
    result, raised = None, None
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the client might raise in future versions
        raised = e
    assert len(WIRE) == 1, (
        f"{what}: expected exactly one HTTP request, saw {len(WIRE)}; "
        f"client returned {result!r}, raised {raised!r}"
    )
    return Outcome(what, result, raised, WIRE[0])


def ok(o: Outcome) -> dict:
    """Assert success both on the wire and as the client reports it."""
    w = o.wire
    assert o.raised is None, f"{o.what}: client raised {o.raised!r} (HTTP {w.status_code}, body {w.response_body[:300]!r})"
    assert 200 <= w.status_code < 300, f"{o.what}: HTTP {w.status_code}, body {w.response_body[:300]!r}"
    body = w.json()
    assert isinstance(body, dict), f"{o.what}: response JSON is not an object: {body!r}"
    assert isinstance(o.result, dict), f"{o.what}: client returned {type(o.result).__name__}: {o.result!r}"
    assert o.result.get("status") == "ok", f"{o.what}: {o.result!r}"
    # The client hands back the parsed body untouched on 2xx.
    assert o.result == body, f"{o.what}: client result {o.result!r} != wire body {body!r}"
    return o.result


def err(o: Outcome, http_status: int) -> dict:
    """Assert an API error: the expected HTTP code, a {"status":"error","message":str}
    body on the wire, and the client surfacing that error (dict in 0.1.7; an
    exception from the databunkerpro package is also accepted)."""
    w = o.wire
    body = w.json()
    assert isinstance(body, dict), f"{o.what}: error body is not a JSON object: {body!r}"
    assert w.status_code == http_status, (
        f"{o.what}: expected HTTP {http_status}, got {w.status_code}; body {body!r}"
    )
    assert body.get("status") == "error", f"{o.what}: {body!r}"
    message = body.get("message")
    assert isinstance(message, str) and message.strip(), f"{o.what}: no error message in {body!r}"

    if o.raised is not None:
        # A deliberate client error type is fine. A crash inside the client
        # (AttributeError etc.) means the server sent something it can't parse.
        mod = type(o.raised).__module__ or ""
        assert mod.startswith("databunkerpro"), (
            f"{o.what}: client crashed with {o.raised!r} on body {w.response_body[:300]!r}"
        )
        assert message in str(o.raised), f"{o.what}: server message lost: {o.raised!r}"
        return body

    r = o.result
    assert isinstance(r, dict), f"{o.what}: client returned {r!r}"
    assert r.get("status") == "error", f"{o.what}: client did not report an error: {r!r}"
    cmsg = r.get("message")
    assert isinstance(cmsg, str) and cmsg, f"{o.what}: {r!r}"
    assert not cmsg.startswith("Error making request"), (
        f"{o.what}: client-side transport/JSON failure, not a server error: {cmsg!r}"
    )
    assert cmsg == message, f"{o.what}: client message {cmsg!r} != server message {message!r}"
    return r


def method(api: DatabunkerproAPI, name: str) -> Callable:
    fn = getattr(api, name, None)
    assert callable(fn), (
        f"databunkerpro {getattr(databunkerpro, '__version__', '?')} has no {name}(); "
        f"this test was written against 0.1.7"
    )
    return fn


# --------------------------------------------------------------------------
# fixtures: root client, per-run tenant, tenant client
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_id() -> str:
    return secrets.token_hex(4)


@pytest.fixture(scope="module")
def root(cfg) -> DatabunkerproAPI:
    return DatabunkerproAPI(cfg["url"], cfg["root_token"], cfg["root_tenant"])


@pytest.fixture(scope="module")
def tenant(root):
    name = "py" + secrets.token_hex(6)  # [a-z0-9]+
    assert name.isalnum() and name == name.lower()
    o = call("TenantCreate", root.create_tenant, {"tenantname": name, "tenantorg": TENANT_ORG})
    res = ok(o)
    sent = json.loads(o.wire.request_body)
    assert sent == {"tenantname": name, "tenantorg": TENANT_ORG}, sent
    return {"name": name, "result": res}


@pytest.fixture(scope="module")
def api(cfg, tenant) -> DatabunkerproAPI:
    xtoken = tenant["result"].get("xtoken")
    assert isinstance(xtoken, str) and xtoken, f"TenantCreate gave no xtoken: {tenant['result']!r}"
    return DatabunkerproAPI(cfg["url"], xtoken, tenant["name"])


def mixed_case(s: str) -> str:
    out = "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(s))
    assert out != s and out.lower() == s.lower()
    return out


def create_user(api, profile, what="UserCreate") -> str:
    res = ok(call(what, api.create_user, profile))
    token = res.get("token")
    assert isinstance(token, str) and token, f"{what}: no token in {res!r}"
    return token


def get_profile(api, mode, identity, what=None) -> dict:
    res = ok(call(what or f"UserGet({mode})", api.get_user, mode, identity))
    assert isinstance(res.get("profile"), dict), f"UserGet({mode}): {res!r}"
    return res


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_tenant_create_result(tenant, root):
    res = tenant["result"]
    tid = res.get("tenantid")
    assert isinstance(tid, int) and not isinstance(tid, bool), f"tenantid: {res!r}"
    assert tid > 0, res
    xtoken = res.get("xtoken")
    assert isinstance(xtoken, str) and xtoken, f"xtoken: {res!r}"
    assert xtoken != root.x_bunker_token, "tenant xtoken must not be the root token"


def test_tenant_create_duplicate_name_conflicts(root, tenant):
    o = call("TenantCreate(dup)", root.create_tenant,
             {"tenantname": tenant["name"], "tenantorg": TENANT_ORG})
    err(o, 409)


def test_user_create_and_get_by_every_mode(api, run_id):
    email = f"ada.{run_id}@example.com"
    profile = {"login": f"ada{run_id}", "email": email, "phone": "+1 555 0100", "name": "Ada"}
    token = create_user(api, profile)

    by_token = get_profile(api, "token", token)
    assert by_token["profile"] == profile, by_token
    assert by_token.get("token") == token, by_token

    by_email = get_profile(api, "email", mixed_case(email), "UserGet(email, mixed case)")
    assert by_email["profile"] == profile, by_email
    assert by_email.get("token") == token, by_email

    by_login = get_profile(api, "login", profile["login"])
    assert by_login["profile"] == profile, by_login
    assert by_login.get("token") == token, by_login

    by_phone = get_profile(api, "phone", profile["phone"])
    assert by_phone["profile"] == profile, by_phone
    assert by_phone.get("token") == token, by_phone


def test_unknown_user_is_404(api):
    o = call("UserGet(unknown email)", api.get_user, "email", f"nobody.{secrets.token_hex(6)}@example.com")
    err(o, 404)


def test_update_patch_and_versions(api, run_id):
    profile = {"login": f"upd{run_id}", "email": f"upd.{run_id}@example.com", "name": "Ada"}
    token = create_user(api, profile)

    first = get_profile(api, "token", token)
    assert first["profile"] == profile, first
    v1 = first.get("version")
    assert isinstance(v1, int) and not isinstance(v1, bool), f"UserGet has no int version: {first!r}"

    # UserUpdate: the client sends {"mode","identity","profile"}.
    updated = dict(profile, name="Ada Lovelace")
    o = call("UserUpdate", api.update_user, "token", token, {"name": "Ada Lovelace"})
    ok(o)
    assert json.loads(o.wire.request_body) == {
        "mode": "token", "identity": token, "profile": {"name": "Ada Lovelace"}}
    second = get_profile(api, "token", token, "UserGet after update")
    assert second["profile"]["name"] == "Ada Lovelace", second
    assert second["profile"].get("email") == profile["email"], (
        f"UserUpdate with a partial profile dropped other fields: {second!r}")
    assert second["profile"] == updated, second
    v2 = second.get("version")
    assert isinstance(v2, int) and v2 > v1, f"version did not increase on update: {v1} -> {v2}"

    # UserPatch (RFC 6902): the client sends {"mode","identity","patch":[ops]}.
    patch_user = method(api, "patch_user")
    ok(call("UserPatch", patch_user, "token", token,
            [{"op": "replace", "path": "/name", "value": "Countess of Lovelace"}]))
    third = get_profile(api, "token", token, "UserGet after patch")
    assert third["profile"] == dict(updated, name="Countess of Lovelace"), third
    v3 = third.get("version")
    assert isinstance(v3, int) and v3 > v2, f"version did not increase on patch: {v2} -> {v3}"

    # UserListVersions: {"status":"ok","versions":[{"version","optime","md5"}]}
    list_versions = method(api, "list_user_versions")
    res = ok(call("UserListVersions", list_versions, "token", token))
    versions = res.get("versions")
    assert isinstance(versions, list) and len(versions) >= 3, res
    nums = [v.get("version") for v in versions if isinstance(v, dict)]
    assert all(isinstance(n, int) for n in nums) and len(nums) == len(versions), res
    assert {v1, v2, v3} <= set(nums), f"versions {nums} missing one of {v1},{v2},{v3}"

    # UserGet with an explicit historic version returns the old profile.
    old = ok(call("UserGet(version)", api.get_user, "token", token, version=v1))
    assert old.get("profile") == profile, old


def test_bulk_create(api, run_id):
    profiles = [
        {"login": f"bulk{i}{run_id}", "email": f"bulk{i}.{run_id}@example.com", "name": f"Bulk {i}"}
        for i in range(3)
    ]
    o = call("UserCreateBulk", api.create_users_bulk, [{"profile": p} for p in profiles])
    res = ok(o)
    assert json.loads(o.wire.request_body) == {"records": [{"profile": p} for p in profiles]}

    created = res.get("created")
    assert isinstance(created, list) and len(created) == 3, res
    by_email = {}
    for rec in created:
        assert isinstance(rec, dict), res
        tok = rec.get("token")
        assert isinstance(tok, str) and tok, res
        prof = rec.get("profile")
        assert isinstance(prof, dict), f"created entries must carry the profile: {res!r}"
        by_email[prof.get("email")] = (tok, prof)
    assert set(by_email) == {p["email"] for p in profiles}, res
    assert len({t for t, _ in by_email.values()}) == 3, f"tokens not distinct: {res!r}"

    target = profiles[1]
    tok, prof = by_email[target["email"]]
    assert prof == target, prof
    got = get_profile(api, "token", tok, "UserGet(bulk user)")
    assert got["profile"] == target, got
    assert got.get("token") == tok, got


def test_duplicate_email_conflicts(api, run_id):
    email = f"dup.{run_id}@example.com"
    create_user(api, {"login": f"dupa{run_id}", "email": email, "name": "First"})

    same = call("UserCreate(duplicate email)", api.create_user,
                {"login": f"dupb{run_id}", "email": email, "name": "Second"})
    err(same, 409)

    other_case = call("UserCreate(duplicate email, other case)", api.create_user,
                      {"login": f"dupc{run_id}", "email": email.upper(), "name": "Third"})
    err(other_case, 409)

    # The rejected creates must not have left anything behind.
    err(call("UserGet(login of rejected)", api.get_user, "login", f"dupb{run_id}"), 404)
    err(call("UserGet(login of rejected 2)", api.get_user, "login", f"dupc{run_id}"), 404)


def test_audit_events(api, run_id):
    profile = {"login": f"aud{run_id}", "email": f"aud.{run_id}@example.com", "name": "Audit"}
    token = create_user(api, profile)
    ok(call("UserUpdate", api.update_user, "token", token, {"name": "Audited"}))

    list_events = method(api, "list_user_audit_events")
    res = ok(call("AuditListUserEvents", list_events, "token", token, 0, 100))
    rows = res.get("rows")
    assert isinstance(rows, list) and len(rows) >= 1, res
    first = rows[0]
    assert isinstance(first, dict), res
    uuid = first.get("auditeventuuid")
    assert isinstance(uuid, str) and uuid, f"audit row has no auditeventuuid: {first!r}"

    get_event = method(api, "get_audit_event")
    ok(call("AuditGetEvent", get_event, uuid))


def test_delete_then_get_is_404(api, run_id):
    profile = {"login": f"del{run_id}", "email": f"del.{run_id}@example.com",
               "phone": "+1 555 0199", "name": "Gone"}
    token = create_user(api, profile)
    assert get_profile(api, "token", token)["profile"] == profile

    o = call("UserDelete", api.delete_user, "token", token)
    ok(o)
    assert json.loads(o.wire.request_body) == {"mode": "token", "identity": token}

    err(call("UserGet(deleted, token)", api.get_user, "token", token), 404)
    err(call("UserGet(deleted, email)", api.get_user, "email", profile["email"]), 404)
    err(call("UserGet(deleted, login)", api.get_user, "login", profile["login"]), 404)


def test_tenant_get_with_root(root, tenant):
    tid = tenant["result"]["tenantid"]
    o = call("TenantGet", root.get_tenant, tid)
    res = ok(o)
    assert json.loads(o.wire.request_body) == {"tenantid": tid}
    assert res.get("tenantname") == tenant["name"], res
    assert res.get("tenantorg") == TENANT_ORG, res


def test_tenant_list_with_root(root, tenant):
    tid = tenant["result"]["tenantid"]
    found = None
    offset, limit = 0, 100
    for _ in range(100):  # at most 10,000 tenants scanned
        res = ok(call("TenantListTenants", root.list_tenants, offset, limit))
        rows = res.get("rows")
        assert isinstance(rows, list), res
        assert len(rows) <= limit, f"server ignored limit={limit}: {len(rows)} rows"
        for row in rows:
            assert isinstance(row, dict), res
            if row.get("tenantid") == tid:
                found = row
        if found is not None or len(rows) < limit:
            break
        offset += limit
    assert found is not None, f"tenant {tid} ({tenant['name']}) not in TenantListTenants"
    assert found.get("tenantname") == tenant["name"], found
    assert found.get("tenantorg") == TENANT_ORG, found



# --------------------------------------------------------------------------
# privacy families: app data, sessions, consent (one pass each through the client)
# --------------------------------------------------------------------------


def test_app_data_round_trip(api, run_id):
    token = create_user(api, {"login": f"app-{run_id}", "email": f"app-{run_id}@example.com"})
    ok(call("AppdataCreate", method(api, "create_app_data"), "token", token, "shop", {"plan": "gold", "visits": 3}))
    got = ok(call("AppdataGet", method(api, "get_app_data"), "token", token, "shop"))
    assert got.get("appdata") == {"plan": "gold", "visits": 3}, got
    ok(call("AppdataUpdate", method(api, "update_app_data"), "token", token, "shop", {"plan": "platinum"}))
    got = ok(call("AppdataGet", method(api, "get_app_data"), "token", token, "shop"))
    assert got["appdata"] == {"plan": "platinum", "visits": 3}, got
    names = ok(call("AppdataListUserAppNames", method(api, "list_app_data_names"), "token", token))
    assert names.get("apps") == ["shop"], names
    err(call("AppdataGet(missing)", method(api, "get_app_data"), "token", token, "nope"), 404)


def test_session_round_trip(api, run_id):
    import uuid

    token = create_user(api, {"login": f"ses-{run_id}"})
    sid = str(uuid.uuid4())
    ok(call("SessionUpsert", method(api, "upsert_session"), sid, {"cart": [1, 2]}, {"mode": "token", "identity": token}))
    got = ok(call("SessionGet", method(api, "get_session"), sid))
    assert got.get("sessiondata") == {"cart": [1, 2]}, got
    rows = ok(call("SessionListUserSessions", method(api, "list_user_sessions"), "token", token))
    assert [r.get("sessionuuid") for r in rows.get("rows", [])] == [sid], rows
    ok(call("SessionDelete", method(api, "delete_session"), sid))
    err(call("SessionGet(deleted)", method(api, "get_session"), sid), 404)


def test_consent_round_trip(api, run_id):
    brief = f"news-{run_id}"
    ok(call("LegalBasisCreate", method(api, "create_legal_basis"), {"brief": brief, "status": "active", "shortdesc": "Newsletter"}))
    token = create_user(api, {"login": f"con-{run_id}"})
    ok(call("AgreementAccept", method(api, "accept_agreement"), "token", token, brief, {"agreementmethod": "web-form"}))
    got = ok(call("AgreementGet", method(api, "get_user_agreement"), "token", token, brief))
    assert got.get("agreement", {}).get("status") == "active", got
    ok(call("AgreementCancel", method(api, "cancel_agreement"), "token", token, brief))
    got = ok(call("AgreementGet", method(api, "get_user_agreement"), "token", token, brief))
    assert got["agreement"]["status"] != "active", got
    listed = ok(call("LegalBasisListAgreements", method(api, "list_agreements")))
    assert brief in [r.get("brief") for r in listed.get("rows", [])], listed


def test_tokens_round_trip(api):
    created = ok(call("TokenCreate", method(api, "create_token"), "creditcard", "4111111111111111", {"unique": True}))
    base = created.get("tokenbase")
    assert isinstance(base, str) and len(base) == 16 and base.isdigit() and base != "4111111111111111", created
    got = ok(call("TokenGet", method(api, "get_token"), base))
    assert got.get("record") == "4111111111111111", got
    again = ok(call("TokenCreate(unique)", method(api, "create_token"), "creditcard", "4111111111111111", {"unique": True}))
    assert again.get("tokenbase") == base, again
    unlock = ok(call("BulkListUnlock", method(api, "bulk_list_unlock")))
    listed = ok(call("BulkListTokens", method(api, "bulk_list_tokens"), unlock["unlockuuid"], [base]))
    assert [r.get("tokenbase") for r in listed.get("rows", [])] == [base], listed
    ok(call("TokenDelete", method(api, "delete_token"), base))
    err(call("TokenGet(deleted)", method(api, "get_token"), base), 404)


def test_groups_and_shared_records(api, run_id):
    group = f"team-{run_id}"
    gid = ok(call("GroupCreate", method(api, "create_group"), {"groupname": group, "groupdesc": "Team"})).get("groupid")
    assert isinstance(gid, int), gid
    token = create_user(api, {"login": f"grp-{run_id}", "name": "Grace", "email": f"grp-{run_id}@example.com"})
    ok(call("GroupAddUser", method(api, "add_user_to_group"), "token", token, gid))
    rows = ok(call("GroupListUserGroups", method(api, "list_user_groups"), "token", token)).get("rows", [])
    assert [r.get("groupname") for r in rows] == [group], rows
    shared = ok(call("SharedRecordCreate", method(api, "create_shared_record"), "token", token, {"fields": "name", "partner": "acme"}))
    data = ok(call("SharedRecordGet", method(api, "get_shared_record"), shared["recorduuid"])).get("data")
    assert data == {"name": "Grace"}, data


def test_user_request_approved_by_the_admin(api, run_id):
    token = create_user(api, {"login": f"req-{run_id}", "name": "Before"})
    filed = ok(call("UserUpdateRequest", method(api, "request_user_update"), "token", token, {"name": "After"}))
    assert get_profile(api, "token", token)["profile"]["name"] == "Before"
    ok(call("UserRequestApprove", method(api, "approve_user_request"), filed["requestuuid"], {"reason": "verified"}))
    assert get_profile(api, "token", token)["profile"]["name"] == "After"


def test_files_round_trip(api, run_id):
    import base64

    token = create_user(api, {"login": f"file-{run_id}"})
    data = base64.b64encode(b"hello strongroom").decode()
    created = ok(call("FileCreate", method(api, "create_file"), "token", token, "note.txt", data, {"mimetype": "text/plain"}))
    assert isinstance(created.get("fileuuid"), str) and created.get("duplicate") is False, created
    got = ok(call("FileGet", method(api, "get_file"), "token", token, created["fileuuid"]))
    assert base64.b64decode(got["filedata"]) == b"hello strongroom" and got.get("mimetype") == "text/plain", got
    again = ok(call("FileCreate(duplicate)", method(api, "create_file"), "token", token, "copy.txt", data, {}))
    assert again.get("duplicate") is True and again.get("fileuuid") == created["fileuuid"], again


def test_retention_and_search(api, run_id):
    email = f"ret-{run_id}@example.com"
    token = ok(call("UserCreate(finaltime)", api.create_user, {"email": email}, {"finaltime": "1h"}))["token"]
    got = ok(call("UserGet", api.get_user, "token", token))
    assert got.get("finaltime", 0) > 0 and got.get("expirationtime", 0) > 0, got
    unlock = ok(call("BulkListUnlock", method(api, "bulk_list_unlock")))["unlockuuid"]
    rows = ok(call("UserSearch", method(api, "search_user"), email.upper(), unlock)).get("rows", [])
    assert [r.get("token") for r in rows] == [token], rows


def test_system_stats_with_root(root):
    stats = ok(call("SystemGetSystemStats", method(root, "get_system_stats"))).get("stats", {})
    assert all(isinstance(stats.get(k), int) for k in ("numusers", "numtenants", "numtokens", "numsessions")), stats
    assert stats["numtenants"] >= 2, stats
