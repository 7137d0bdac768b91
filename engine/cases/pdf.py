"""The readable copy of a case file: a PDF in Vietnamese (English beside), with the diagram of the
version that ran and the path the case took painted on it (drawn from the BPMN file's own layout,
DI), made with fpdf2 and the DejaVu font shipped in data/fonts."""
from __future__ import annotations

import json

from fpdf import FPDF
from lxml import etree

from engine import paths
from engine.formats import moment
from engine.xmlsafe import parse

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
DC = "{http://www.omg.org/spec/DD/20100524/DC}"
DI = "{http://www.omg.org/spec/DD/20100524/DI}"
DONE, WAITING, PLAIN = (30, 123, 52), (199, 119, 0), (90, 90, 90)
FILL = {DONE: (227, 245, 230), WAITING: (255, 244, 214), PLAIN: (255, 255, 255)}
STATUS_VI = {"running": "đang chạy", "completed": "đã xong", "cancelled": "đã hủy",
             "error": "lỗi", "open": "mở", "closed": "đã đóng", "claimed": "đã nhận"}


def _local(iso: str | None) -> str:
    return moment(iso) or "—"


class _Case(FPDF):
    def __init__(self, title: str):
        super().__init__(format="A4")
        self.add_font("DejaVu", "", str(paths.FONTS_DIR / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(paths.FONTS_DIR / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(True, margin=15)
        self.title_text = title

    def footer(self) -> None:
        """Each page names the case and its number."""
        self.set_y(-12)
        self.set_font("DejaVu", "", 7)
        self.set_text_color(*PLAIN)
        self.cell(0, 5, f"{self.title_text} · trang {self.page_no()} / page {self.page_no()}",
                  align="C")

    def heading(self, vi: str, en: str) -> None:
        """A section title, Vietnamese then English."""
        self.ln(3)
        self.set_font("DejaVu", "B", 12)
        self.set_text_color(0, 0, 0)
        self.multi_cell(0, 7, f"{vi} / {en}", new_x="LMARGIN", new_y="NEXT")

    def line_of(self, text: str, size: int = 9, bold: bool = False) -> None:
        """One paragraph of text."""
        self.set_font("DejaVu", "B" if bold else "", size)
        self.set_text_color(0, 0, 0)
        self.multi_cell(0, 4.6, text, new_x="LMARGIN", new_y="NEXT")


def _diagram(pdf: _Case, bpmn: str, done: set[str], waiting: set[str]) -> None:
    """The diagram as its DI lays it out, scaled to the page: shapes and edges, the path taken
    in green and where the case waits in amber."""
    try:
        root = parse(bpmn)
    except etree.XMLSyntaxError:
        pdf.line_of("(sơ đồ không đọc được / the diagram cannot be read)")
        return
    kinds = {el.get("id"): etree.QName(el).localname for el in root.iter()
             if isinstance(el.tag, str) and el.get("id")}
    names = {el.get("id"): (el.get("name") or "") for el in root.iter()
             if isinstance(el.tag, str) and el.get("id")}
    plane = root.find(f".//{BPMNDI}BPMNPlane")
    if plane is None:
        pdf.line_of("(tệp không có bố cục sơ đồ / the file has no diagram layout)")
        return
    shapes = [(s.get("bpmnElement"), s.find(f"{DC}Bounds")) for s in plane.iter(f"{BPMNDI}BPMNShape")]
    shapes = [(e, float(b.get("x")), float(b.get("y")), float(b.get("width")),
               float(b.get("height"))) for e, b in shapes if b is not None]
    edges = [(e.get("bpmnElement"), [(float(p.get("x")), float(p.get("y")))
                                     for p in e.iter(f"{DI}waypoint")])
             for e in plane.iter(f"{BPMNDI}BPMNEdge")]
    xs = [x for _, x, _, w, _ in shapes] + [x + w for _, x, _, w, _ in shapes]
    ys = [y for _, _, y, _, _ in shapes] + [y + h for _, _, y, _, h in shapes]
    if not xs:
        return
    width, top = pdf.epw, pdf.get_y() + 2
    scale = min(width / max(1.0, max(xs) - min(xs)), 110 / max(1.0, max(ys) - min(ys)))

    def at(x: float, y: float) -> tuple[float, float]:
        return pdf.l_margin + (x - min(xs)) * scale, top + (y - min(ys)) * scale

    def colour(element: str) -> tuple:
        return WAITING if element in waiting else DONE if element in done else PLAIN
    for element, x, y, w, h in shapes:  # pools and lanes first, the steps over them
        if kinds.get(element) not in ("participant", "lane"):
            continue
        pdf.set_draw_color(200, 200, 200)
        pdf.rect(*at(x, y), w * scale, h * scale)
    for element, points in edges:
        pdf.set_draw_color(*colour(element))
        pdf.set_line_width(0.6 if element in done else 0.2)
        for (x1, y1), (x2, y2) in zip(points, points[1:]):
            pdf.line(*at(x1, y1), *at(x2, y2))
    pdf.set_font("DejaVu", "", max(4, min(7, 9 * scale)))
    for element, x, y, w, h in shapes:
        kind = kinds.get(element, "")
        if kind in ("participant", "lane"):
            continue
        tone = colour(element)
        pdf.set_draw_color(*tone)
        pdf.set_fill_color(*FILL[tone])
        pdf.set_line_width(0.6 if tone != PLAIN else 0.2)
        left, up = at(x, y)
        if kind.endswith("Event"):
            pdf.ellipse(left, up, w * scale, h * scale, style="DF")
        elif kind.endswith("Gateway"):
            cx, cy = left + w * scale / 2, up + h * scale / 2
            pdf.polygon([(cx, up), (left + w * scale, cy), (cx, up + h * scale), (left, cy)],
                        style="DF")
        else:
            pdf.rect(left, up, w * scale, h * scale, style="DF", round_corners=True)
            pdf.set_text_color(0, 0, 0)
            pdf.set_xy(left + 0.5, up + 0.5)
            pdf.multi_cell(w * scale - 1, 2.6, names.get(element, "")[:60], align="C")
    pdf.set_line_width(0.2)
    pdf.set_y(top + (max(ys) - min(ys)) * scale + 4)
    pdf.set_font("DejaVu", "", 7)
    pdf.set_text_color(*DONE)
    pdf.cell(60, 4, "■ đã đi qua / path taken")
    pdf.set_text_color(*WAITING)
    pdf.cell(60, 4, "■ đang chờ / waiting here", new_x="LMARGIN", new_y="NEXT")


def render(case: dict, exported_at: str, exported_by: str) -> bytes:
    """The PDF of a case file (case_file's data)."""
    instance, scenario = case["instance"], case["scenario"]
    name = scenario.get("name") or {}
    title = f"Hồ sơ vụ việc #{instance['id']} / Case file #{instance['id']}"
    pdf = _Case(title)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.line_of(f"Kịch bản / Scenario: {name.get('vi', scenario['key'])} — {name.get('en', '')} "
                f"({scenario['key']}, phiên bản / version {scenario['version']})")
    pdf.line_of(f"Trạng thái / Status: {STATUS_VI.get(instance['status'], instance['status'])} "
                f"/ {instance['status']} · Đối tượng / Subject: {instance['subject'] or '—'}")
    pdf.line_of(f"Bắt đầu / Started: {_local(instance['started_at'])} · Kết thúc / Ended: "
                f"{_local(instance['ended_at'])}")
    pdf.line_of(f"Xuất lúc / Exported: {_local(exported_at)} bởi / by {exported_by}", size=8)
    pdf.heading("Sơ đồ và đường đi", "Diagram and path taken")
    _diagram(pdf, case["bpmn"], set(case["path"]["elements"]), set(case["path"]["waiting"]))
    for v in case["violations"]:
        pdf.heading("Vi phạm, sự cố", "Violation or incident")
        pdf.line_of(f"{v['title']['vi']} / {v['title']['en']}", bold=True)
        pdf.line_of(f"Quy tắc / Rule {v['rule']} · mức / severity {v['severity']} · "
                    f"{v['status']} {v['outcome'] or ''} · mở / opened {_local(v['opened_at'])}")
        if v["rule_text"]:
            pdf.line_of(v["rule_text"], size=7)
        for e in v["events"]:
            pdf.line_of(f"Sự kiện / Event {e['type']} từ / from {e['source']} "
                        f"({_local(e['received_at'])}): "
                        f"{json.dumps(e['data'], ensure_ascii=False)}", size=7)
    pdf.heading("Công việc", "Tasks")
    for t in case["tasks"]:
        pdf.line_of(f"{t['name']} — {t['department']} · {STATUS_VI.get(t['status'], t['status'])}"
                    f" · giao / created {_local(t['created_at'])} · xong / done "
                    f"{_local(t['completed_at'])} · {t['completed_by'] or t['assignee'] or '—'}",
                    bold=True, size=8)
        if t["answers"]:
            pdf.line_of(json.dumps(t["answers"], ensure_ascii=False), size=7)
    if case["slas"]:
        pdf.heading("Thời hạn", "SLA clocks")
        for c in case["slas"]:
            pdf.line_of(f"{c['name'].get('vi', c['key'])} — {c['department']} · mục tiêu / "
                        f"target {c['target_hours']} h · hạn / due {_local(c['due_at'])} · "
                        f"{c['status']} · mức / level {c['level']}", size=8)
    if case["notifications"]:
        pdf.heading("Thông báo", "Notifications")
        for n in case["notifications"]:
            pdf.line_of(f"{n['channel']} → {n['to'] or n['user_id']}: {n['subject']} · "
                        f"{n['status']} {_local(n['sent_at'])}", size=7)
    if case.get("findings"):
        pdf.heading("Kết luận kiểm tra", "Audit findings")
        for f in case["findings"]:
            pdf.line_of(f"{f['finding_id']} · {f['severity']} · {f['department']} · "
                        f"{_local(f['recorded_at'])} · {f['auditor']}: {f['note']}", size=8)
            answer = f.get("answer") or {}
            pdf.line_of(f"Trả lời / Answer: {answer.get('answer', '—')} "
                        f"{answer.get('explanation', '')} ({_local(f.get('answered_at'))})",
                        size=7)
    pdf.heading("Nhật ký kiểm toán", "Audit records")
    for r in case["records"]:
        pdf.line_of(f"#{r['seq']} {_local(r['at'])} {r['actor']} — {r['action']} "
                    f"{json.dumps(r['details'], ensure_ascii=False)[:400]}", size=6.5)
    return bytes(pdf.output())
