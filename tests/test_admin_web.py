"""Administration in the web app: an administrator manages people and source systems from the
pages, every change audited with who made it; bad input is shown on its field and changes
nothing; other roles may not open the pages."""
from __future__ import annotations

import re

import pytest

from engine.audit.models import AuditRecord
from engine.auth import service as auth
from engine.auth.models import User
from engine.events.models import Source
from tests.test_web import _csrf, _login


@pytest.fixture
def admin(ioc, people):
    """A test client logged in as the administrator."""
    from engine.app import create_app

    client = create_app(services=ioc).test_client()
    assert _login(client, "admin").status_code == 302
    return client


def _post(client, url, data, page=None):
    """POST `data` with the CSRF token of `page` (default: the page at `url`)."""
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={**data, "csrf_token": _csrf(html)})


def _records(ioc, *actions):
    """The records of these actions made from the pages (not the fixtures' own, made as cli)."""
    with ioc.db.read() as s:
        return [(r.action, r.actor, r.details) for r in s.query(AuditRecord)
                .filter(AuditRecord.action.in_(actions), AuditRecord.actor != "cli")
                .order_by(AuditRecord.seq)]


def _user(ioc, username) -> User:
    with ioc.db.read() as s:
        user = s.query(User).filter_by(username=username).one()
        s.expunge(user)
        return user


def test_an_administrator_adds_a_person_changes_their_role_and_it_is_audited(ioc, admin):
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "Người dùng" in page and "phvhcc2" in page
    made = _post(admin, "/admin/users/new", {
        "username": "le.thi.hoa", "full_name": "Lê Thị Hoa", "role": "civil_servant",
        "department": "so-y-te", "email": "hoa@binhduong.gov.vn", "password": "mat-khau-123"})
    assert made.status_code == 302, made.get_data(as_text=True)
    hoa = _user(ioc, "le.thi.hoa")
    assert (hoa.role, hoa.department_key, hoa.full_name) == ("civil_servant", "so-y-te",
                                                             "Lê Thị Hoa")
    url = f"/admin/users/{hoa.id}"
    changed = _post(admin, url, {"full_name": "Lê Thị Hoa", "role": "department_head",
                                 "department": "so-y-te", "email": "hoa@binhduong.gov.vn"})
    assert changed.status_code == 302
    assert _user(ioc, "le.thi.hoa").role == "department_head"
    page = admin.get(url).get_data(as_text=True)
    assert "Đổi vai trò hoặc đơn vị" in page and \
        "Cán bộ, công chức / Civil servant → Lãnh đạo sở / phòng / Department head" in page
    assert _records(ioc, "user.created", "user.role_changed") == [
        ("user.created", "user:admin", {"username": "le.thi.hoa", "role": "civil_servant",
                                        "department": "so-y-te", "api_token": False,
                                        "email": True}),
        ("user.role_changed", "user:admin", {"username": "le.thi.hoa",
                                             "role": ["civil_servant", "department_head"]})]
    # The filters find her by name, role and unit.
    found = admin.get("/admin/users?q=hoa&role=department_head&department=so-y-te")
    assert "le.thi.hoa" in found.get_data(as_text=True)
    assert "le.thi.hoa" not in admin.get("/admin/users?role=auditor").get_data(as_text=True)
    assert admin.get("/admin/users?role=boss").status_code == 400


def test_bad_input_is_shown_on_its_field_and_changes_nothing(ioc, admin, people):
    taken = _post(admin, "/admin/users/new", {"username": "phvhcc", "role": "civil_servant",
                                              "department": "so-y-te"}, page="/admin/users/new")
    assert taken.status_code == 400 and "already exists" in taken.get_data(as_text=True)
    no_unit = _post(admin, "/admin/users/new", {"username": "moi", "role": "civil_servant",
                                                "department": ""})
    text = no_unit.get_data(as_text=True)
    assert no_unit.status_code == 400 and 'data-field="department"' in text
    bad = _post(admin, "/admin/users/new", {"username": "Có Dấu", "role": "civil_servant",
                                            "department": "so-y-te", "password": "ngan"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and 'data-field="username"' in text and \
        'data-field="password"' in text
    # A unit merged away in 2025 is not offered, and refused when sent anyway.
    url = f"/admin/users/{people['phvhcc'][0]}"
    assert "so-tai-nguyen-moi-truong" not in admin.get(url).get_data(as_text=True)
    merged = _post(admin, url, {"role": "civil_servant", "department": "so-tai-nguyen-moi-truong"})
    assert merged.status_code == 400
    assert _user(ioc, "phvhcc").department_key == "trung-tam-phvhcc"
    # The last administrator keeps the role.
    me = f"/admin/users/{people['admin'][0]}"
    demoted = _post(admin, me, {"role": "auditor", "department": "ioc"})
    assert demoted.status_code == 400 and "last active administrator" in \
        demoted.get_data(as_text=True)
    mismatch = _post(admin, f"{url}/password", {"password": "mat-khau-moi-1",
                                                "confirm": "khac-han-nhau"}, page=url)
    assert mismatch.status_code == 400 and "không khớp" in mismatch.get_data(as_text=True)
    with ioc.db.read() as s:
        assert s.query(User).filter_by(username="moi").count() == 0
    assert _records(ioc, "user.created", "user.role_changed", "user.password_changed") == []


def test_deactivating_a_person_ends_their_session_and_tokens_are_shown_once(ioc, admin, people):
    from engine.app import create_app

    officer = create_app(services=ioc).test_client()
    assert _login(officer, "phvhcc").status_code == 302
    assert officer.get("/inbox").status_code == 200
    url = f"/admin/users/{people['phvhcc'][0]}"
    assert _post(admin, f"{url}/deactivate", {}, page=url).status_code == 302
    assert officer.get("/inbox").status_code == 302  # back to the login page
    assert _login(officer, "phvhcc").status_code == 401  # refused
    assert _post(admin, f"{url}/activate", {}, page=url).status_code == 302
    issued = _post(admin, f"{url}/token", {}, page=url)
    token = re.search(r"(iocu_[\w-]+)", issued.get_data(as_text=True)).group(1)
    with ioc.db.read() as s:
        assert auth.user_by_token(s, token).username == "phvhcc"
    # Shown once: not on the next visit, not in the session cookie.
    assert token not in admin.get(url).get_data(as_text=True)
    assert _post(admin, f"{url}/token/revoke", {}, page=url).status_code == 302
    with ioc.db.read() as s:
        assert auth.user_by_token(s, token) is None
    assert _post(admin, f"{url}/password", {"password": "mat-khau-moi-1",
                                            "confirm": "mat-khau-moi-1"}, page=url).status_code \
        == 302
    assert _login(officer, "phvhcc", "mat-khau-moi-1").status_code == 302
    actions = [a for a, _, _ in _records(ioc, "user.deactivated", "user.activated",
                                         "user.token_issued", "user.token_revoked",
                                         "user.password_changed")]
    assert actions == ["user.deactivated", "user.activated", "user.token_issued",
                       "user.token_revoked", "user.password_changed"]


def test_an_administrator_registers_and_changes_a_source(ioc, admin):
    made = _post(admin, "/admin/sources/new", {"name": "mot-cua-dien-tu",
                                               "allowed_types": ["dossier.received",
                                                                 "dossier.returned"],
                                               "rate_limit": "600"})
    text = made.get_data(as_text=True)
    assert made.status_code == 200 and "chỉ hiện một lần" in text, re.findall(r"error[^<]*<", text)
    token = re.search(r"(iocs_[\w-]+)", text).group(1)
    with ioc.db.read() as s:
        source = auth.source_by_token(s, token)
        assert (source.allowed_types, source.rate_limit_per_minute) == (
            ["dossier.received", "dossier.returned"], 600)
    url = f"/admin/sources/{source.id}"
    assert "mot-cua-dien-tu" in admin.get("/sources").get_data(as_text=True)
    short = _post(admin, url, {"allowed_types": ["dossier.received"], "hmac_secret": "ngan"})
    assert short.status_code == 400 and 'data-field="hmac_secret"' in short.get_data(as_text=True)
    unknown = _post(admin, url, {"allowed_types": ["dossier.lost"]})
    assert unknown.status_code == 400
    changed = _post(admin, url, {"allowed_types": ["dossier.received"],
                                 "hmac_secret": "mot-bi-mat-du-dai-16", "disabled": "y"})
    assert changed.status_code == 302
    rotated = _post(admin, f"{url}/token", {}, page=url)
    new = re.search(r"(iocs_[\w-]+)", rotated.get_data(as_text=True)).group(1)
    with ioc.db.read() as s:
        assert auth.source_by_token(s, token) is None
        stored = s.get(Source, source.id)
        assert (stored.allowed_types, stored.rate_limit_per_minute, stored.disabled,
                stored.hmac_secret) == (["dossier.received"], None, True, "mot-bi-mat-du-dai-16")
        assert stored.token_hash == auth.hash_token(new)
    history = admin.get(url).get_data(as_text=True)
    assert "Sửa cấu hình nguồn" in history and "mot-bi-mat" not in history
    assert [(a, actor) for a, actor, _ in _records(ioc, "source.created", "source.changed",
                                                    "source.token_rotated")] == [
        ("source.created", "user:admin"), ("source.changed", "user:admin"),
        ("source.token_rotated", "user:admin")]


@pytest.mark.parametrize("username", ["phvhcc", "inspector", "auditor"])
def test_only_administrators_open_the_administration(ioc, people, username):
    from engine.app import create_app

    client = create_app(services=ioc).test_client()
    assert _login(client, username).status_code == 302
    for url in ("/admin/users", "/admin/users/new", f"/admin/users/{people['admin'][0]}",
                "/admin/sources/new"):
        page = client.get(url)
        assert page.status_code == 403 and "Bạn không có quyền" in page.get_data(as_text=True)
    assert "/admin/users" not in client.get("/").get_data(as_text=True)


def test_the_auditor_reads_logins_failures_permission_changes_and_case_views(ioc, admin, people):
    """Issue 20: logins, failed logins, permission changes and who read which case file are
    in the audit log, and the auditor finds them by kind, person and period."""
    from engine.app import create_app

    url = f"/admin/users/{people['phvhcc'][0]}"
    assert _post(admin, url, {"role": "department_head", "department": "trung-tam-phvhcc"}
                 ).status_code == 302
    stranger = create_app(services=ioc).test_client()
    assert _login(stranger, "phvhcc", "doan-sai-mat-khau").status_code == 401
    assert _login(stranger, "khong-ai-ca", "doan-sai-mat-khau").status_code == 401
    with ioc.db.session() as s:  # a case file read (as the case page records it)
        from engine.audit import service as audit
        audit.viewed(s, "auditor", 41, "page")

    auditor = create_app(services=ioc).test_client()
    assert _login(auditor, "auditor").status_code == 302
    page = auditor.get("/audit/access").get_data(as_text=True)
    for text in ("Đổi vai trò hoặc đơn vị", "Đăng nhập không thành công", "sai mật khẩu",
                 "tên đăng nhập không có", "Xem hồ sơ", "/cases/41", "Đăng nhập / Logged in"):
        assert text in page, text
    failed = auditor.get("/audit/access?kind=failed_logins").get_data(as_text=True)
    assert 'id="access-total">2<' in failed and "Đổi vai trò" not in failed
    theirs = auditor.get("/audit/access?person=phvhcc").get_data(as_text=True)
    # What was done to phvhcc (the account made, the role, the failed login), nobody else's.
    assert 'id="access-total">3<' in theirs and "khong-ai-ca" not in theirs
    assert "Tạo tài khoản" in theirs
    assert "Lãnh đạo sở / phòng / Department head" in theirs
    assert 'id="access-total">0<' in auditor.get(
        "/audit/access?since=2020-01-01&until=2020-01-02").get_data(as_text=True)
    assert auditor.get("/audit/access?kind=nothing").status_code == 400
    assert auditor.get("/audit/access?since=hom-qua").status_code == 400
    officer = create_app(services=ioc).test_client()
    assert _login(officer, "phvhcc2").status_code == 302
    assert officer.get("/audit/access").status_code == 403


def test_the_access_log_pages_newest_first_without_gaps(ioc, people):
    from engine.audit import access
    from engine.audit import service as audit

    with ioc.db.session() as s:
        for case in range(1, 8):
            audit.viewed(s, "auditor", case, "page")
    seen, before = [], None
    with ioc.db.read() as s:
        while True:
            rows, before, total = access.search(s, access.Filters(kind="case_views"), before,
                                                limit=3)
            seen += [int(r.subject_id) for r in rows]
            if before is None:
                break
    assert (seen, total) == (list(range(7, 0, -1)), 7)
