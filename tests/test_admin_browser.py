"""The administrator's journey in a real browser (issues 20 and 23): add a person, give them a
new role, issue an API token (shown once), deactivate them after confirming, and register a
source; the auditor then finds those changes in the access log. At 1366 px and at 390 px (a
phone) nothing scrolls sideways. Screenshots go to
test-artifacts/."""
from __future__ import annotations

import re

from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.auth.models import User
from tests.browser import PHONE, log_in, overflow, screenshot


def test_the_administrator_manages_people_and_sources_on_desktop_and_phone(
        server, loaded, people, page):
    page.set_viewport_size({"width": 1366, "height": 900})
    log_in(page, server, "admin")
    page.click("nav a[href='/admin/users']")
    page.click("#new-user")
    page.fill("#user-form input[name=username]", "pham.van.duc")
    page.fill("#user-form input[name=full_name]", "Phạm Văn Đức")
    page.select_option("#user-form select[name=role]", "civil_servant")
    page.select_option("#user-form select[name=department]", "phuong-thu-dau-mot")
    page.fill("#user-form input[name=password]", "mat-khau-ban-dau")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("text=pham.van.duc added")
    assert "Phường Thủ Dầu Một" in page.inner_text("main")

    page.select_option("#user-form select[name=role]", "department_head")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("text=Changes saved")
    assert "Cán bộ, công chức / Civil servant → Lãnh đạo sở / phòng / Department head" in \
        page.inner_text("#history")
    page.click("#issue-token")
    token = re.search(r"iocu_[\w-]+", page.inner_text("#new-token")).group(0)
    assert overflow(page) == 0
    screenshot(page, "admin-1-person")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#deactivate")
    page.wait_for_selector("text=Account deactivated")
    assert token not in page.content()
    with loaded.db.read() as s:
        duc = s.scalars(select(User).where(User.username == "pham.van.duc")).one()
        assert (duc.role, duc.active) == ("department_head", False)
        actions = s.scalars(select(AuditRecord.action).where(
            AuditRecord.subject_type == "user", AuditRecord.subject_id == str(duc.id))
            .order_by(AuditRecord.seq)).all()
    assert actions == ["user.created", "user.role_changed", "user.token_issued",
                       "user.deactivated"]

    page.goto(f"{server}/sources")
    page.click("#new-source")
    page.fill("#source-form input[name=name]", "camera-ai-thu-dau-mot")
    page.select_option("#source-form select[name=allowed_types]", ["camera.detection"])
    page.fill("#source-form input[name=rate_limit]", "1200")
    page.click("#source-form button[type=submit]")
    assert re.search(r"iocs_[\w-]+", page.inner_text("#new-token"))
    screenshot(page, "admin-2-source")

    page.set_viewport_size(PHONE)
    for url in ("/admin/users", f"/admin/users/{duc.id}", "/admin/users/new", "/sources",
                "/admin/sources/new"):
        page.goto(f"{server}{url}")
        assert overflow(page) == 0, f"{url} is {overflow(page)} px wider than a phone"
    page.goto(f"{server}/admin/users")
    screenshot(page, "admin-3-people-phone")

    # The auditor finds every change made to the person's access in the access log.
    page.set_viewport_size({"width": 1366, "height": 900})
    page.click("header button.link")  # log out
    log_in(page, server, "auditor")
    page.goto(f"{server}/audit")
    page.click("#access-log")
    page.fill("#access-filters input[name=person]", "pham.van.duc")
    page.click("#access-filters button[type=submit]")
    page.wait_for_url(lambda url: "person=pham.van.duc" in url)
    assert page.inner_text("#access-total") == "4"
    assert "Khóa tài khoản / Account deactivated" in page.inner_text("#access")
    screenshot(page, "admin-4-access-log")
    page.set_viewport_size(PHONE)
    assert overflow(page) == 0
    screenshot(page, "admin-5-access-log-phone")
