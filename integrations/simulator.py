"""Mô phỏng — a realistic, reproducible stream of the province's events for the demo.

`generate(seed, start, hours)` plans every event of a window as CloudEvents, each with the demo
source that sends it and its moment (the event's `time`): dossiers at the one-stop shops on
working days in office hours (deadlines in working time, from data/calendar), 1022 hotline
tickets, air stations every 10 minutes, social-media posts, camera detections, a malware alert, a
CAP storm warning and epidemic case reports, in Vietnamese, spread over the 36 wards and communes.
It is pure: the same seed and window give the same list, ids included, so a resend is answered
as duplicates. Besides the everyday traffic the window holds what the shipped scenarios detect:
dossiers not returned by their deadline, a second supplement request, a dossier returned without
a reason, a step held beyond its allotted hours, a sustained PM2.5 episode, a silent station and
a hot topic.

`run(url, tokens, ...)` sends the plan in time order to `POST {url}/api/v1/events`, one batch per
source and tick, paced by `speed` (144 = a day in ten minutes, 0 = as fast as possible).

Time. Events keep their simulated `time`, while the engine's deadlines (absence, silence, SLA)
run on the real clock. Sent faster than real time, a window in the past therefore looks to the
air-quality scenario like stations that stopped reporting: each reading is over an hour old when
it arrives, so its station's silence deadline has already passed before the next reading comes.
The default window therefore starts now (`parse_start("now")`) and runs ahead of the clock: what
rules see at once (supplements, returns, PM2.5, hot topic) opens during the stream, and deadlines
(overdue dossiers, the held step, the silent station) fire when the real clock reaches them.
docs/simulator.md explains the choice.

Every dossier received in the window is completed in it, except those planned to be overdue, and
every step started is completed, except the one planned to be held, so the stream leaves no
deadline behind that would open a violation nobody planned. (Dossiers with long procedures
appear through their later steps, supplements and returns: they were received before the window.)
"""
from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as time_of_day
from pathlib import Path
from typing import Callable, Iterable

from engine.worktime.calendar import WorkingCalendar, default_calendar

# Demo source name → the CloudEvent `source` it writes and the types it may send (engine/demo.py
# registers sources with these names and types).
SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "mot-cua": ("/mo-phong/mot-cua", (
        "dossier.received", "dossier.step_started", "dossier.step_completed",
        "dossier.supplement_requested", "dossier.returned", "dossier.completed")),
    "tong-dai-1022": ("/mo-phong/tong-dai-1022", ("hotline.ticket.created",
                                                   "hotline.ticket.resolved")),
    "quan-trac": ("/mo-phong/quan-trac/khong-khi", ("environment.reading",)),
    "giam-sat-mxh": ("/mo-phong/giam-sat-mxh", ("social.post",)),
    "camera": ("/mo-phong/camera", ("camera.detection",)),
    "an-ninh-mang": ("/mo-phong/an-ninh-mang", ("security.alert",)),
    "canh-bao": ("/mo-phong/canh-bao", ("emergency.alert",)),
    "y-te": ("/mo-phong/y-te", ("health.case_report",)),
}
# What `ioc simulate` uses unless told otherwise: a day in ten minutes, starting now.
DEFAULT_SEED, DEFAULT_SPEED, DEFAULT_HOURS = 2025, 144.0, 24.0
MAX_BATCH = 1000  # the API's limit per request
READING_EVERY = timedelta(minutes=10)
PM25_LIMIT = 50.0  # QCVN 05:2023/BTNMT; the air-quality scenario tests `value > 50`


class SimulatorError(RuntimeError):
    """The simulator cannot go on (engine unreachable, bad arguments)."""


@dataclass(frozen=True)
class Planned:
    """One planned event: when it happens, which demo source sends it, the CloudEvent."""

    moment: datetime
    source: str
    event: dict


# ---------------------------------------------------------------------------------------- places
# The 36 wards (phường) and communes (xã) of data/organisation/binh-duong.yaml, with an approximate
# centre (about ±2 km: map pins, not survey data), the former district they were carved from (it
# picks road names) and a weight for how much happens there (denser in the industrial south).
WARDS: tuple[tuple[str, str, float, float, str, int], ...] = (
    ("phuong-dong-hoa", "Phường Đông Hòa", 10.895, 106.785, "di-an", 3),
    ("phuong-di-an", "Phường Dĩ An", 10.905, 106.765, "di-an", 4),
    ("phuong-tan-dong-hiep", "Phường Tân Đông Hiệp", 10.925, 106.755, "di-an", 3),
    ("phuong-thuan-an", "Phường Thuận An", 10.935, 106.710, "thuan-an", 3),
    ("phuong-thuan-giao", "Phường Thuận Giao", 10.955, 106.720, "thuan-an", 3),
    ("phuong-binh-hoa", "Phường Bình Hòa", 10.910, 106.730, "thuan-an", 3),
    ("phuong-lai-thieu", "Phường Lái Thiêu", 10.905, 106.700, "thuan-an", 3),
    ("phuong-an-phu", "Phường An Phú", 10.950, 106.750, "thuan-an", 3),
    ("phuong-binh-duong", "Phường Bình Dương", 11.050, 106.680, "thu-dau-mot", 2),
    ("phuong-chanh-hiep", "Phường Chánh Hiệp", 11.010, 106.680, "thu-dau-mot", 2),
    ("phuong-thu-dau-mot", "Phường Thủ Dầu Một", 10.980, 106.655, "thu-dau-mot", 4),
    ("phuong-phu-loi", "Phường Phú Lợi", 10.990, 106.690, "thu-dau-mot", 3),
    ("phuong-vinh-tan", "Phường Vĩnh Tân", 11.080, 106.730, "tan-uyen", 2),
    ("phuong-binh-co", "Phường Bình Cơ", 11.060, 106.760, "tan-uyen", 1),
    ("phuong-tan-uyen", "Phường Tân Uyên", 11.060, 106.800, "tan-uyen", 2),
    ("phuong-tan-hiep", "Phường Tân Hiệp", 11.040, 106.760, "tan-uyen", 2),
    ("phuong-tan-khanh", "Phường Tân Khánh", 11.030, 106.740, "tan-uyen", 2),
    ("phuong-phu-an", "Phường Phú An", 11.050, 106.590, "ben-cat", 1),
    ("phuong-tay-nam", "Phường Tây Nam", 11.100, 106.560, "ben-cat", 1),
    ("phuong-long-nguyen", "Phường Long Nguyên", 11.190, 106.590, "ben-cat", 1),
    ("phuong-ben-cat", "Phường Bến Cát", 11.140, 106.600, "ben-cat", 2),
    ("phuong-chanh-phu-hoa", "Phường Chánh Phú Hòa", 11.160, 106.660, "ben-cat", 2),
    ("phuong-thoi-hoa", "Phường Thới Hòa", 11.120, 106.620, "ben-cat", 2),
    ("phuong-hoa-loi", "Phường Hòa Lợi", 11.090, 106.640, "ben-cat", 2),
    ("xa-bac-tan-uyen", "Xã Bắc Tân Uyên", 11.130, 106.830, "bac-tan-uyen", 1),
    ("xa-thuong-tan", "Xã Thường Tân", 11.100, 106.870, "bac-tan-uyen", 1),
    ("xa-an-long", "Xã An Long", 11.330, 106.720, "phu-giao", 1),
    ("xa-phuoc-thanh", "Xã Phước Thành", 11.300, 106.880, "phu-giao", 1),
    ("xa-phuoc-hoa", "Xã Phước Hòa", 11.230, 106.760, "phu-giao", 1),
    ("xa-phu-giao", "Xã Phú Giáo", 11.300, 106.800, "phu-giao", 1),
    ("xa-tru-van-tho", "Xã Trừ Văn Thố", 11.330, 106.580, "bau-bang", 1),
    ("xa-bau-bang", "Xã Bàu Bàng", 11.260, 106.640, "bau-bang", 1),
    ("xa-minh-thanh", "Xã Minh Thạnh", 11.430, 106.450, "dau-tieng", 1),
    ("xa-long-hoa", "Xã Long Hòa", 11.330, 106.460, "dau-tieng", 1),
    ("xa-dau-tieng", "Xã Dầu Tiếng", 11.280, 106.360, "dau-tieng", 1),
    ("xa-thanh-an", "Xã Thanh An", 11.230, 106.400, "dau-tieng", 1),
)
_WARD = {w[0]: w for w in WARDS}
ROADS = {
    "di-an": ("đường ĐT743", "đường Nguyễn An Ninh", "đường Trần Hưng Đạo"),
    "thuan-an": ("Quốc lộ 13", "đường Cách Mạng Tháng Tám", "đường Thủ Khoa Huân"),
    "thu-dau-mot": ("Đại lộ Bình Dương", "đường Phú Lợi", "đường Yersin"),
    "tan-uyen": ("đường ĐT746", "đường ĐT747", "đường ĐT742"),
    "ben-cat": ("Quốc lộ 13", "đường ĐT741", "đường Mỹ Phước – Tân Vạn"),
    "bac-tan-uyen": ("đường ĐT746", "đường ĐT747", "đường liên xã"),
    "phu-giao": ("đường ĐT741", "đường ĐT750", "đường liên xã"),
    "bau-bang": ("Quốc lộ 13", "đường ĐT750", "đường liên xã"),
    "dau-tieng": ("đường ĐT744", "đường ĐT749", "đường liên xã"),
}
# Units whose people exist in the demo (engine/demo.py): the planned dossier violations go there
# so that the walkthrough's users find them in their inboxes.
DEMO_UNITS = ("phuong-thu-dau-mot", "phuong-di-an")

# ------------------------------------------------------------------------------------- dossiers
# Procedures are named by slugs (not national procedure codes, which this file does not vouch
# for). days: the legal time limit in working days; steps: (step, allotted working hours).
# Received in the window (short procedures, most returned the same day):
SHORT_PROCEDURES = (
    ("chung-thuc-ban-sao", 0.5, (("chung-thuc", 2),), 30),
    ("chung-thuc-chu-ky", 0.5, (("chung-thuc", 2),), 12),
    ("trich-luc-ho-tich", 0.5, (("tham-dinh", 2),), 10),
    ("dang-ky-khai-sinh", 1, (("tham-dinh", 4),), 14),
    ("dang-ky-ket-hon", 3, (("tham-dinh", 8), ("phe-duyet", 4)), 6),
    ("dang-ky-ho-kinh-doanh", 3, (("tham-dinh", 12), ("phe-duyet", 4)), 8),
)
# Received before the window (days or weeks ago); the window sees their later steps:
# (procedure, unit or None for a ward, weight)
LONG_PROCEDURES = (
    ("cap-phep-xay-dung-nha-o", None, 4),
    ("chuyen-muc-dich-su-dung-dat", None, 2),
    ("dang-ky-bien-dong-dat-dai", "so-nong-nghiep-moi-truong", 4),
    ("cap-phieu-ly-lich-tu-phap", "so-tu-phap", 2),
    ("doi-giay-phep-lai-xe", "so-xay-dung", 3),
    ("cap-chung-chi-hanh-nghe-duoc", "so-y-te", 1),
)
SUPPLEMENT_REASONS = (
    "Bổ sung bản sao giấy chứng nhận quyền sử dụng đất có chứng thực",
    "Bổ sung bản vẽ thiết kế có chữ ký của chủ đầu tư",
    "Bổ sung sơ đồ vị trí thửa đất",
    "Bổ sung văn bản ủy quyền có công chứng",
    "Bổ sung giấy khám sức khỏe còn hiệu lực",
    "Bổ sung hợp đồng thuê mặt bằng kinh doanh",
    "Bổ sung bản sao căn cước của người được ủy quyền",
)
RETURN_REASONS = (
    "Hồ sơ không thuộc thẩm quyền giải quyết của đơn vị",
    "Thửa đất đang có tranh chấp, chưa đủ điều kiện giải quyết",
    "Công dân có đơn đề nghị rút hồ sơ",
)
FAMILY = ("nguyen", "tran", "le", "pham", "hoang", "huynh", "vo", "dang", "bui", "do", "ho",
          "ngo", "duong", "ly")
MIDDLE = ("van", "thi", "minh", "ngoc", "thanh", "hoang", "duc", "thu")
GIVEN = ("an", "binh", "cuong", "dung", "hoa", "lan", "minh", "nam", "phuong", "quang", "son",
         "tam", "thao", "trang", "tuan", "vy", "hanh", "hieu", "khoa", "linh")

# -------------------------------------------------------------------------------------- hotline
CATEGORIES = (("environment", 20), ("traffic", 15), ("urban-order", 25), ("public-services", 15),
              ("security", 8), ("health", 5), ("other", 12))
TICKETS = {
    "environment": (
        "Mùi hôi nồng nặc từ cơ sở sản xuất trên {road}, {ward}, người dân không mở được cửa",
        "Khói đốt rác vào chiều tối gần khu dân cư {ward}",
        "Nước thải chảy tràn ra {road}, bốc mùi hôi",
        "Xưởng cơ khí hoạt động gây ồn sau 22 giờ ở {ward}",
        "Xe chở vật liệu không che chắn làm bụi mù mịt trên {road}"),
    "traffic": (
        "Đèn tín hiệu giao thông tại giao lộ trên {road} bị hỏng",
        "Ùn tắc kéo dài giờ cao điểm trên {road}",
        "Ổ gà lớn giữa {road}, đã có người té ngã",
        "Xe tải đậu lấn chiếm làn đường trên {road}"),
    "urban-order": (
        "Lấn chiếm vỉa hè buôn bán trên {road}, {ward}",
        "Rác thải tồn đọng nhiều ngày tại hẻm gần chợ {ward}",
        "Xây dựng không phép trong khu dân cư {ward}",
        "Đèn chiếu sáng công cộng trên {road} không hoạt động",
        "Cây xanh có nguy cơ gãy đổ trên {road}"),
    "public-services": (
        "Hỏi thủ tục đăng ký khai sinh tại {ward}",
        "Hồ sơ nộp trực tuyến đã quá hẹn nhưng chưa có kết quả, đề nghị kiểm tra",
        "Cúp nước sinh hoạt từ sáng đến nay tại {ward}",
        "Mất điện kéo dài ở khu phố thuộc {ward}",
        "Đề nghị hướng dẫn thủ tục đổi giấy phép lái xe"),
    "security": (
        "Thanh thiếu niên tụ tập gây mất trật tự về đêm tại {ward}",
        "Nghi có nhóm đua xe trái phép trên {road}",
        "Trộm cắp xe máy xảy ra nhiều lần ở khu nhà trọ thuộc {ward}"),
    "health": (
        "Nhiều người sốt xuất huyết trong khu nhà trọ ở {ward}, đề nghị phun thuốc diệt muỗi",
        "Cơ sở kinh doanh thực phẩm không bảo đảm vệ sinh gần trường học ở {ward}"),
    "other": (
        "Góp ý về giờ làm việc của bộ phận một cửa {ward}",
        "Đề nghị lắp biển báo khu vực trường học trên {road}",
        "Chó thả rông không rọ mõm tại công viên ở {ward}"),
}
ANSWERS = {
    "public-services": "Tổng đài đã hướng dẫn công dân thủ tục và cách nộp qua Cổng dịch vụ công",
    "other": "Tổng đài đã ghi nhận góp ý và giải thích cho công dân; công dân đồng ý",
    None: "Tổng đài đã cung cấp thông tin, công dân không còn kiến nghị",
}
# Calls per hour of the day (relative): people call most in the morning.
CALL_PROFILE = (0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4, 5, 5, 4.5, 3.5, 2, 3, 3.5, 3, 2.5, 2, 1.5,
                1.5, 1.2, 0.8, 0.5, 0.3)

# ---------------------------------------------------------------------------------- air stations
# (station id, ward, industrial): industrial stations host the afternoon PM2.5 episodes, the
# others may lose their connection.
STATIONS = (
    ("BD-AQ-01", "phuong-thu-dau-mot", False),
    ("BD-AQ-02", "phuong-thuan-an", False),
    ("BD-AQ-03", "phuong-di-an", True),
    ("BD-AQ-04", "phuong-tan-uyen", True),
    ("BD-AQ-05", "phuong-ben-cat", True),
    ("BD-AQ-06", "xa-bau-bang", False),
)
# PM2.5 over the day (relative): rush hours and the night inversion raise it, midday lowers it.
PM25_PROFILE = (1.2, 1.2, 1.15, 1.1, 1.1, 1.2, 1.3, 1.35, 1.3, 1.1, 0.95, 0.85, 0.8, 0.8, 0.8,
                0.85, 0.95, 1.15, 1.25, 1.2, 1.15, 1.1, 1.1, 1.15)
# VN_AQI breakpoints (Decision 1459/QĐ-TCMT, 2019): index and PM2.5 / PM10 concentration (µg/m³).
AQI_INDEX = (0, 50, 100, 150, 200, 300, 400, 500)
AQI_PM25 = (0, 25, 50, 80, 150, 250, 350, 500)

# ---------------------------------------------------------------------------------------- social
WATCHED = {
    "dịch vụ công trực tuyến": (
        "Nộp hồ sơ trực tuyến nhanh hơn mình nghĩ, không phải xếp hàng",
        "Cổng dịch vụ công sáng nay hơi chậm, tải mãi không được",
        "Ai biết cách nộp hồ sơ đăng ký hộ kinh doanh trực tuyến không?"),
    "ùn tắc giao thông": (
        "Kẹt xe cứng ngắc giờ tan tầm, đi 2 km mất nửa tiếng",
        "Đoạn này sáng nào cũng ùn tắc, mong có đèn tín hiệu",
        "Công nhân tan ca, đường đông nghẹt"),
    "ô nhiễm không khí": (
        "Sáng nay trời mù, không biết có phải bụi mịn không",
        "Ứng dụng báo chất lượng không khí kém, mọi người nhớ đeo khẩu trang",
        "Khói từ lò đốt gần nhà khó thở quá"),
    "rác thải": (
        "Bãi rác tự phát ven đường lâu rồi chưa ai dọn",
        "Xe thu gom rác hôm nay không thấy đến",
        "Đề nghị xử lý người đổ trộm xà bần ban đêm"),
    "an ninh trật tự": (
        "Cảnh báo giả danh nhân viên điện lực vào nhà lừa đảo",
        "Khu trọ bị mất xe máy, mọi người cẩn thận",
        "Cảm ơn công an phường đã hỗ trợ tìm lại đồ thất lạc"),
    "sốt xuất huyết": (
        "Con mình sốt xuất huyết, mọi người nhớ diệt lăng quăng",
        "Phường đang phun thuốc diệt muỗi, nhà nào chưa được phun báo nhé",
        "Mùa mưa nhiều muỗi, ca sốt xuất huyết tăng"),
}
HOT_TOPICS = {
    "ngập đường Dĩ An": (
        "Đường ĐT743 ngập sâu sau mưa lớn, xe chết máy hàng loạt",
        "Mưa hơn một giờ, khu vực chợ Dĩ An ngập tới đầu gối",
        "Ai đi qua Dĩ An tránh ĐT743 nhé, nước ngập quá",
        "Clip người dân đẩy xe qua đoạn ngập trên ĐT743"),
    "cháy xưởng Tân Uyên": (
        "Cháy lớn tại một xưởng gỗ ở Tân Uyên, khói đen bốc cao",
        "Lực lượng chữa cháy đang có mặt tại đám cháy xưởng gỗ Tân Uyên",
        "Khói từ vụ cháy xưởng bay sang khu dân cư, bà con đóng cửa",
        "Hình ảnh vụ cháy xưởng ở Tân Uyên nhìn từ xa"),
    "kẹt xe Quốc lộ 13": (
        "Quốc lộ 13 kẹt xe kéo dài nhiều km sau va chạm giao thông",
        "Xe container va chạm trên Quốc lộ 13, giao thông tê liệt",
        "Ai về Thuận An tránh Quốc lộ 13 đoạn này",
        "Cập nhật: Quốc lộ 13 vẫn ùn ứ, CSGT đang phân luồng"),
    "mùi hôi khu công nghiệp": (
        "Mùi hôi khó chịu bao trùm khu dân cư gần khu công nghiệp tối nay",
        "Cả xóm ngửi thấy mùi hóa chất, có ai biết nguồn từ đâu không",
        "Tối nào cũng mùi hôi, đề nghị cơ quan chức năng kiểm tra",
        "Trẻ con ho nhiều vì mùi hôi từ khu công nghiệp"),
}
PLATFORMS = (("facebook", 45), ("tiktok", 20), ("zalo", 15), ("youtube", 5), ("news", 5),
             ("forum", 10))
AUTHORS = ("Hội cư dân Dĩ An", "Tin nóng Bình Dương", "Góc Thủ Dầu Một", "Chợ Tân Uyên online",
           "Người Bến Cát", "Cộng đồng Thuận An", "Xóm trọ công nhân", "Trang tin khu phố")
POST_PROFILE = (0.6, 0.3, 0.2, 0.1, 0.1, 0.3, 1, 1.5, 1.5, 1.2, 1.2, 2, 2.5, 1.8, 1.2, 1.2, 1.3,
                1.6, 2, 2.6, 3, 3, 2.2, 1.2)

# ------------------------------------------------------------------------------------ cameras
CAMERAS = (
    ("CAM-TDM-012", "phuong-thu-dau-mot", "Quảng trường Trung tâm hành chính"),
    ("CAM-TDM-031", "phuong-thu-dau-mot", "Chợ Thủ Dầu Một"),
    ("CAM-DA-007", "phuong-di-an", "Ngã tư 550"),
    ("CAM-TA-015", "phuong-lai-thieu", "Chợ Lái Thiêu"),
    ("CAM-BD-004", "phuong-binh-duong", "Công viên Trung tâm thành phố mới"),
    ("CAM-BC-009", "phuong-ben-cat", "Cổng khu công nghiệp Mỹ Phước"),
)


# =========================================================================================== plan

def generate(seed: int, start: datetime, hours: float) -> list[Planned]:
    """Every event of the window [start, start + hours), in time order; pure in its arguments."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if hours <= 0:
        raise ValueError("hours must be positive")
    return _Plan(seed, start, hours, default_calendar()).build()


class _Plan:
    """The builder behind generate(): one window, one seed."""

    def __init__(self, seed: int, start: datetime, hours: float, calendar: WorkingCalendar):
        self.seed, self.cal, self.tz = seed, calendar, calendar.tz
        self.start = start.astimezone(self.tz).replace(microsecond=0)
        self.end = self.start + timedelta(hours=hours)
        self.items: list[tuple[datetime, int, Planned]] = []

    # -- plumbing ---------------------------------------------------------------------------

    def rng(self, *parts: object) -> random.Random:
        # One generator per (seed, topic, day…): a day's hotline or posts do not depend on the
        # window, so overlapping windows plan the same events with the same ids.
        return random.Random("|".join(str(p) for p in (self.seed, *parts)))

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz).replace(microsecond=0)

    def inside(self, *moments: datetime) -> bool:
        return all(self.start <= m < self.end for m in moments)

    def event(self, source: str, type_: str, key: str, moment: datetime, data: dict,
              subject: str | None = None) -> Planned:
        moment = self.local(moment)
        ce = {"specversion": "1.0", "id": f"sim{self.seed}-{key}", "source": SOURCES[source][0],
              "type": type_, "time": moment.isoformat(), "datacontenttype": "application/json",
              "data": data}
        if subject:
            ce["subject"] = subject
        return Planned(moment, source, ce)

    def add(self, *planned: Planned) -> None:
        for p in planned:
            self.items.append((p.moment, len(self.items), p))

    def add_story(self, story: list[Planned]) -> bool:
        """Add events that only make sense together (a dossier's life), all or none."""
        if not story or not self.inside(*(p.moment for p in story)):
            return False
        self.add(*story)
        return True

    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - timedelta(seconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def at(self, day: date, hour: float) -> datetime:
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return midnight + timedelta(seconds=round(hour * 3600))

    def hour_moment(self, rng: random.Random, day: date, profile: tuple[float, ...]) -> datetime:
        hour = rng.choices(range(24), weights=profile)[0]
        return self.at(day, hour + rng.random())

    def office_day(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's office intervals (none on a day off)."""
        if not self.cal.is_working_day(day):
            return []
        return [(self.at(day, a.hour + a.minute / 60), self.at(day, b.hour + b.minute / 60))
                for a, b in self.cal.office_hours]

    def office(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's office intervals inside the window."""
        return [(max(a, self.start), min(b, self.end)) for a, b in self.office_day(day)
                if max(a, self.start) < min(b, self.end)]

    def after(self, moment: datetime, minutes: float) -> datetime:
        """`minutes` of office time after `moment` (lunch, nights and days off skipped)."""
        return self.local(self.cal.add_working_time(moment, timedelta(minutes=minutes)))

    def build(self) -> list[Planned]:
        for day in self.days():
            self.dossiers(day)
            self.hotline(day)
            self.social(day)
            self.cameras(day)
            self.security(day)
            self.health(day)
        self.air()
        self.storm_warning()
        self.items.sort(key=lambda item: (item[0], item[1]))
        return [p for _, _, p in self.items]

    # -- dossiers ----------------------------------------------------------------------------

    def dossiers(self, day: date) -> None:
        if not self.cal.is_working_day(day):
            return
        # The day's routine work does not depend on the window (overlapping windows plan the
        # same dossiers under the same ids); what a scenario should detect is placed in the
        # window's own office time, so that any window with a few office hours holds it.
        self.routine_dossiers(day, self.rng("dossiers", day))
        office = self.office(day)
        if office:
            self.planned_dossiers(day, self.rng("planned", day, self.start.isoformat()), office)

    def routine_dossiers(self, day: date, rng: random.Random) -> None:
        office = self.office_day(day)
        hours = sum((b - a).total_seconds() for a, b in office) / 3600
        # New dossiers of short procedures, received and returned in time (4–5 an office hour).
        for seq in range(1, round(hours * rng.uniform(4.0, 5.0)) + 1):
            proc, days, steps, _w = rng.choices(SHORT_PROCEDURES,
                                                weights=[p[3] for p in SHORT_PROCEDURES])[0]
            unit = _pick_ward(rng)
            received = self.office_moment(rng, office)
            self.add_story(self.received_story(rng, _dossier_id(self.seed, unit, day, seq), proc,
                                               days, steps, unit, received, complete=True))
        # Dossiers received days ago: the approval step, then the result (in time).
        seq = 1000
        for _ in range(round(hours * rng.uniform(1.0, 1.4))):
            seq += 1
            data = self.older(rng, day, seq)
            t1 = self.office_moment(rng, office)
            t2 = self.after(t1, rng.randint(20, 90))
            t3 = self.after(t2, rng.randint(10, 60))
            self.add_story([
                self.dossier("step_started", "phe-duyet-start", t1,
                             {**data, "step": "phe-duyet", "allotted_hours": 8}),
                self.dossier("step_completed", "phe-duyet-done", t2, {**data, "step": "phe-duyet"}),
                self.dossier("completed", "completed", t3, {**data, "step": "tra-ket-qua"})])
        # Asked once for a supplement, naming everything at once (lawful).
        for _ in range(round(hours * rng.uniform(0.3, 0.5))):
            seq += 1
            self.add_story([self.dossier(
                "supplement_requested", "supplement-1", self.office_moment(rng, office),
                {**self.older(rng, day, seq), "step": "tham-dinh",
                 "reason": rng.choice(SUPPLEMENT_REASONS)})])
        # Returned with a stated reason (a lawful refusal).
        for _ in range(2):
            seq += 1
            self.add_story([self.dossier(
                "returned", "returned", self.office_moment(rng, office),
                {**self.older(rng, day, seq), "step": "tham-dinh",
                 "reason": rng.choice(RETURN_REASONS)})])

    def planned_dossiers(self, day: date, rng: random.Random,
                         office: list[tuple[datetime, datetime]]) -> None:
        # Ids of planned dossiers carry the minute they start, so two windows over one day
        # never give one id two different stories.
        def seq(moment: datetime) -> int:
            return 5000 + moment.hour * 60 + moment.minute

        # Overdue: a same-day certification received in the morning part of the office time,
        # processed but never returned, its deadline (4 working hours later) inside the window.
        proc, days, steps, _w = SHORT_PROCEDURES[0]
        for unit in DEMO_UNITS:
            received = self.office_moment(rng, office, room=days * 8 * 60)
            if received is None or self.cal.add_working_days(received, days) >= self.end:
                continue
            self.add_story(self.received_story(
                rng, _dossier_id(self.seed, unit, day, seq(received)), proc, days, steps, unit,
                received, complete=False))
        # Asked a second time for what the first request should have named (Decree 61/2018).
        for unit in DEMO_UNITS:
            gap = rng.randint(90, 240)
            first = self.office_moment(rng, office, room=gap)
            if first is None:
                continue
            second = self.after(first, gap)
            data = {**self.older(rng, day, seq(first), unit), "step": "tham-dinh"}
            reasons = rng.sample(SUPPLEMENT_REASONS, 2)
            self.add_story([
                self.dossier("supplement_requested", "supplement-1", first,
                             {**data, "reason": reasons[0]}),
                self.dossier("supplement_requested", "supplement-2", second,
                             {**data, "reason": reasons[1]})])
        # Returned without a reason: the field left out, or sent blank.
        moment = self.office_moment(rng, office)
        data = {**self.older(rng, day, seq(moment), rng.choice(DEMO_UNITS)), "step": "tham-dinh"}
        if rng.random() < 0.5:
            data["reason"] = ""
        self.add_story([self.dossier("returned", "returned", moment, data)])
        # An appraisal step taken up and held beyond its 4 allotted working hours (the deadline
        # inside the window).
        started = self.office_moment(rng, office, room=4 * 60)
        if started is not None and self.after(started, 4 * 60) < self.end:
            data = self.older(rng, day, seq(started), rng.choice(DEMO_UNITS))
            self.add_story([self.dossier("step_started", "tham-dinh-start", started,
                                         {**data, "step": "tham-dinh", "allotted_hours": 4})])

    def received_story(self, rng: random.Random, dossier_id: str, proc: str, days: float,
                       steps: tuple, unit: str, received: datetime,
                       complete: bool) -> list[Planned]:
        """A new dossier: received, its steps each within their allotted hours, the result."""
        clerk, handler = _officer(rng), _officer(rng)
        data = {"dossier_id": dossier_id, "procedure": proc, "unit": unit}
        due = self.local(self.cal.add_working_days(received, days))
        story = [self.dossier("received", "received", received,
                              {**data, "officer": clerk, "step": "tiep-nhan",
                               "due_at": due.isoformat()})]
        moment = received
        for step, allotted in steps:
            # Office minutes stay under both the step's allotment and the whole time limit
            # (a short procedure has 4 working hours in all): done in time.
            moment = self.after(moment, rng.randint(5, 25))
            story.append(self.dossier("step_started", f"{step}-start", moment,
                                      {**data, "officer": handler, "step": step,
                                       "allotted_hours": allotted}))
            moment = self.after(moment, rng.randint(15, min(int(allotted * 60 * 0.6), 90)))
            story.append(self.dossier("step_completed", f"{step}-done", moment,
                                      {**data, "officer": handler, "step": step}))
        if complete:
            moment = self.after(moment, rng.randint(10, 40))
            story.append(self.dossier("completed", "completed", moment,
                                      {**data, "officer": clerk, "step": "tra-ket-qua"}))
        return story

    def older(self, rng: random.Random, day: date, seq: int, unit: str | None = None) -> dict:
        """The fields of a dossier received 3–20 days before `day` (a long procedure)."""
        choices = [p for p in LONG_PROCEDURES if unit is None or p[1] is None]
        proc, fixed, _w = rng.choices(choices, weights=[p[2] for p in choices])[0]
        unit = unit or fixed or _pick_ward(rng)
        received = day - timedelta(days=rng.randint(3, 20))
        return {"dossier_id": _dossier_id(self.seed, unit, received, seq), "procedure": proc,
                "unit": unit, "officer": _officer(rng)}

    def dossier(self, type_: str, suffix: str, moment: datetime, data: dict) -> Planned:
        return self.event("mot-cua", f"dossier.{type_}", f"{data['dossier_id']}-{suffix}",
                          moment, data, subject=data["dossier_id"])

    def office_moment(self, rng: random.Random, office: list[tuple[datetime, datetime]],
                      room: float = 0) -> datetime | None:
        """A moment of office time followed by at least `room` minutes more of it (or None).

        Mornings are busier: citizens come early, and what must follow has time to.
        """
        spans = [(a, (b - a).total_seconds()) for a, b in office]
        left = sum(length for _, length in spans) - room * 60
        if left < 0:
            return None
        # Uniform over the usable office seconds, bent towards the start of the day.
        offset = left * rng.random() ** 1.25
        for a, length in spans:
            if offset < length:
                return self.local(a + timedelta(seconds=offset))
            offset -= length
        return self.local(spans[-1][0] + timedelta(seconds=spans[-1][1] - 1))

    # -- hotline ----------------------------------------------------------------------------

    def hotline(self, day: date) -> None:
        rng = self.rng("hotline", day)
        working = self.cal.is_working_day(day)
        n = round((70 if working else 40) * rng.uniform(0.85, 1.15))
        calls = sorted(self.hour_moment(rng, day, CALL_PROFILE) for _ in range(n))
        cats = [c for c, _ in CATEGORIES]
        for seq, moment in enumerate(calls, 1):
            category = rng.choices(cats, weights=[w for _, w in CATEGORIES])[0]
            ward = _pick_ward(rng)
            key, name, lat, lon, district, _w = _WARD[ward]
            text = rng.choice(TICKETS[category]).format(ward=name,
                                                        road=rng.choice(ROADS[district]))
            ticket = f"1022-{self.seed}-{day:%y%m%d}-{seq:03d}"
            data = {"ticket_id": ticket, "category": category, "ward": ward, "description": text,
                    "channel": rng.choices(("phone", "app", "web", "chat"), (60, 20, 10, 10))[0],
                    "location": {"lat": round(lat + rng.uniform(-0.01, 0.01), 5),
                                 "lon": round(lon + rng.uniform(-0.01, 0.01), 5)}}
            # Questions and suggestions are often settled on the phone; the rest go to units.
            settled = rng.random() < (0.55 if category in ("public-services", "other") else 0.2)
            answered = moment + timedelta(minutes=rng.randint(8, 90))
            if not self.inside(moment):
                continue
            self.add(self.event("tong-dai-1022", "hotline.ticket.created", f"{ticket}-created",
                                moment, data, subject=ticket))
            if settled and self.inside(answered):
                self.add(self.event("tong-dai-1022", "hotline.ticket.resolved",
                                    f"{ticket}-resolved", answered,
                                    {"ticket_id": ticket,
                                     "answer": ANSWERS.get(category, ANSWERS[None])},
                                    subject=ticket))

    # -- air stations ---------------------------------------------------------------------

    def air(self) -> None:
        grid = _ceil_to(self.start, READING_EVERY)
        # The hourly AQI needs the hour before the window too.
        moments = []
        t = grid - 5 * READING_EVERY
        while t < self.end:
            moments.append(t)
            t += READING_EVERY
        episodes = self.episodes()
        window = self.rng("silent-station", self.start.isoformat())
        silent = window.choice([s for s in STATIONS if not s[2]])[0]
        # It stops soon after the window opens: with the default window (now), its silence
        # deadline then comes within two and a half hours of real time.
        silent_from = self.start + timedelta(minutes=window.randint(40, 90))
        for station, ward, _industrial in STATIONS:
            series = [self.pm25(station, m, episodes.get(station, ())) for m in moments]
            for i, moment in enumerate(moments):
                if moment < self.start or (station == silent and moment >= silent_from):
                    continue
                hourly = sum(series[max(0, i - 5):i + 1]) / len(series[max(0, i - 5):i + 1])
                stamp = moment.strftime("%Y%m%d%H%M")
                self.add(self.event("quan-trac", "environment.reading",
                                    f"{station}-pm25-{stamp}", moment,
                                    {"station_id": station, "parameter": "pm25",
                                     "value": round(series[i], 1), "unit": "µg/m³",
                                     "aqi": _aqi(hourly), "ward": ward}, subject=station))
                if moment.minute == 0:
                    # PM10 once an hour, from the hour's PM2.5 (coarse dust is 1.5–1.9 times it).
                    ratio = self.rng("pm10", station, stamp).uniform(1.5, 1.9)
                    self.add(self.event("quan-trac", "environment.reading",
                                        f"{station}-pm10-{stamp}", moment,
                                        {"station_id": station, "parameter": "pm10",
                                         "value": round(hourly * ratio, 1), "unit": "µg/m³",
                                         "ward": ward}, subject=station))

    def episodes(self) -> dict[str, list[tuple[datetime, int, float]]]:
        """Afternoon PM2.5 episodes: station → [(first reading over the limit, readings, peak)]."""
        out: dict[str, list] = {}
        industrial = [s[0] for s in STATIONS if s[2]]
        for day in self.days():
            rng = self.rng("episode", day)
            main, second = rng.sample(industrial, 2)
            n, peak = rng.randint(8, 11), rng.uniform(80, 96)
            # Starting between 13:30 and 14:30, or moved within 13:00–16:00 to lie whole inside
            # a window that cuts the afternoon: any 24 hours hold one.
            first = self.fit(self.at(day, 13.5 + rng.randint(0, 6) / 6),
                             self.at(day, 13.0), self.at(day, 16.0), (n + 1) * READING_EVERY)
            if first is None:
                continue
            out.setdefault(main, []).append((first, n, peak))
            if rng.random() < 0.5:  # some days a neighbouring zone briefly goes over too
                later = first + timedelta(minutes=10 * rng.randint(3, 9))
                out.setdefault(second, []).append((later, rng.randint(4, 5), rng.uniform(55, 62)))
        return out

    def fit(self, moment: datetime, lo: datetime, hi: datetime,
            length: timedelta) -> datetime | None:
        """`moment` moved into [lo, hi] so that it and `length` after it lie in the window."""
        lo = max(lo, _ceil_to(self.start, READING_EVERY))
        hi = min(hi, self.end - length)
        if lo > hi:
            return None
        return min(max(moment, lo), hi)

    def pm25(self, station: str, moment: datetime, episodes: Iterable) -> float:
        """The station's PM2.5 at a grid moment: daily level × hour profile, noise, episodes."""
        local = moment.astimezone(self.tz)
        level = self.rng("pm25-level", station, local.date()).uniform(14, 24)
        h = local.hour + local.minute / 60
        profile = PM25_PROFILE[int(h)] + (PM25_PROFILE[(int(h) + 1) % 24]
                                          - PM25_PROFILE[int(h)]) * (h - int(h))
        noise = self.rng("pm25", station, local.isoformat()).gauss(1.0, 0.07)
        value = min(level * profile * noise, 47.0)  # never over the limit outside an episode
        for first, n, peak in episodes:
            k = round((local - first.astimezone(self.tz)) / READING_EVERY)
            if 0 <= k < n:
                # Rises fast, holds, eases off: every reading of the episode over the limit.
                shape = math.sin(math.pi * (k + 0.7) / (n + 0.4))
                value = max(PM25_LIMIT + 2 + (peak - PM25_LIMIT - 2) * shape
                            + self.rng("spike", station, local.isoformat()).uniform(-2, 2),
                            PM25_LIMIT + 1.5)
            elif k in (-1, n):
                value = max(value, self.rng("edge", station, local.isoformat()).uniform(38, 46))
        return value

    # -- social media ---------------------------------------------------------------------

    def social(self, day: date) -> None:
        rng = self.rng("social", day)
        posts: list[tuple[datetime, str, str]] = []
        for _ in range(round(rng.uniform(90, 120))):
            keyword = rng.choice(list(WATCHED))
            posts.append((self.hour_moment(rng, day, POST_PROFILE), keyword,
                          rng.choice(WATCHED[keyword])))
        posts.sort()
        self.posts(rng, day, [(m, k, t, f"{seq:04d}") for seq, (m, k, t) in enumerate(posts, 1)])
        # The hot topic of the evening: a few early posts, then a burst of 22–28 posts in under
        # nine minutes (the scenario counts 20 within 10), then a slower tail. The burst starts
        # between 19:00 and 21:30, moved inside the window when it cuts those hours.
        hot = self.rng("hot-topic", day)
        keyword = hot.choice(sorted(HOT_TOPICS))
        texts = HOT_TOPICS[keyword]
        burst = self.fit(self.at(day, hot.uniform(19.0, 21.5)), self.at(day, 19.0),
                         self.at(day, 21.5), timedelta(minutes=10))
        if burst is None:
            return
        hot_posts = [(burst - timedelta(minutes=hot.uniform(15, 60)), keyword, hot.choice(texts))
                     for _ in range(3)]
        size = hot.randint(22, 28)
        hot_posts += [(burst + timedelta(seconds=i * 510 / size + hot.uniform(0, 10)), keyword,
                       hot.choice(texts)) for i in range(size)]
        hot_posts += [(burst + timedelta(minutes=hot.uniform(15, 75)), keyword, hot.choice(texts))
                      for _ in range(hot.randint(3, 6))]
        hot_posts.sort()
        # Their ids carry the burst's minute: a burst moved by another window is other posts.
        self.posts(hot, day, [(m, k, t, f"{burst:%H%M}h{i:02d}")
                              for i, (m, k, t) in enumerate(hot_posts, 1)])

    def posts(self, rng: random.Random, day: date,
              posts: list[tuple[datetime, str, str, str]]) -> None:
        platforms = [p for p, _ in PLATFORMS]
        for moment, keyword, text, seq in posts:
            moment = moment.replace(microsecond=0)
            platform = rng.choices(platforms, weights=[w for _, w in PLATFORMS])[0]
            post_id = f"{self.seed}-{day:%y%m%d}-{seq}"
            reach, author = int(rng.lognormvariate(6.5, 1.1)), rng.choice(AUTHORS)
            # Every draw happens before the window test: a day's posts do not shift with it.
            if not self.inside(moment):
                continue
            self.add(self.event("giam-sat-mxh", "social.post", f"post-{post_id}", moment, {
                "post_id": post_id, "platform": platform, "keyword": keyword, "text": text,
                "author": author, "reach": reach,
                "url": f"https://mxh.example/{platform}/{post_id}"}, subject=keyword))

    # -- cameras, security, health --------------------------------------------------------

    def cameras(self, day: date) -> None:
        rng = self.rng("cameras", day)
        found = []
        camera, ward, place = rng.choice(CAMERAS[:2] + CAMERAS[4:5])
        found.append((self.at(day, rng.uniform(17.5, 20.0)), camera, ward, "crowd",
                      {"people_count": rng.randint(350, 800)}))
        for _ in range(rng.randint(4, 7)):
            camera, ward, place = rng.choice(CAMERAS)
            kind = rng.choices(("traffic-violation", "wrong-way"), (3, 1))[0]
            found.append((self.hour_moment(rng, day, CALL_PROFILE), camera, ward, kind, {}))
        for seq, (moment, camera, ward, kind, extra) in enumerate(sorted(found, key=lambda f: f[0]), 1):
            moment = moment.replace(microsecond=0)
            _k, _n, lat, lon, _d, _w = _WARD[ward]
            detection = f"{camera}-{self.seed}-{day:%y%m%d}-{seq:02d}"
            confidence = round(rng.uniform(0.82, 0.97), 2)
            if not self.inside(moment):
                continue
            self.add(self.event("camera", "camera.detection", f"cam-{detection}", moment, {
                "detection_id": detection, "camera_id": camera, "detection_type": kind,
                "confidence": confidence, "ward": ward,
                "location": {"lat": lat, "lon": lon}, **extra,
                "snapshot_url": f"https://camera.example/snapshots/{detection}.jpg"},
                subject=camera))

    def security(self, day: date) -> None:
        rng = self.rng("security", day)
        moment = self.at(day, rng.uniform(8.0, 16.5)).replace(microsecond=0)
        host = f"pvhcc-tn-{rng.randint(1, 24):02d}"
        alert = f"{self.seed}-{day:%y%m%d}-01"
        if self.inside(moment):
            self.add(self.event("an-ninh-mang", "security.alert", f"siem-{alert}", moment, {
                "alert_id": alert, "rule_id": "87105",
                "description": "Phát hiện tệp mã độc (trojan) trong thư mục tải về của máy trạm "
                               "tiếp nhận hồ sơ",
                "level": 12, "severity": "high", "category": "malware", "host": host,
                "indicator": "%064x" % rng.getrandbits(256), "unit": "trung-tam-phvhcc"},
                subject=host))

    def health(self, day: date) -> None:
        rng = self.rng("health", day)
        n = rng.randint(3, 5) if self.cal.is_working_day(day) else rng.randint(1, 2)
        diseases = (("sot-xuat-huyet", 6), ("tay-chan-mieng", 3), ("soi", 1))
        for ward in sorted({_pick_ward(rng) for _ in range(n)}):
            disease = rng.choices([d for d, _ in diseases], [w for _, w in diseases])[0]
            moment = self.at(day, rng.uniform(15.5, 16.75)).replace(microsecond=0)
            report = f"{self.seed}-{day:%y%m%d}-{ward}-{disease}"
            cases = rng.randint(1, 6)
            if self.inside(moment):
                self.add(self.event("y-te", "health.case_report", f"yt-{report}", moment, {
                    "report_id": report, "disease": disease, "ward": ward,
                    "report_date": day.isoformat(), "cases": cases, "deaths": 0},
                    subject=ward))

    def storm_warning(self) -> None:
        rng = self.rng("storm", self.start.isoformat())
        hours = (self.end - self.start).total_seconds() / 3600
        moment = self.start + timedelta(hours=rng.uniform(min(1.0, hours * 0.1),
                                                          min(6.0, hours * 0.5)))
        moment = moment.replace(second=0)
        if not self.inside(moment):
            return
        identifier = f"sim{self.seed}-nchmf-{moment:%Y%m%d%H%M}"
        self.add(self.event("canh-bao", "emergency.alert", identifier, moment, {
            "identifier": identifier,
            "sender": "Trung tâm Dự báo khí tượng thủy văn quốc gia",
            "sent": moment.isoformat(), "status": "Actual", "msg_type": "Alert",
            "event": "Bão", "category": ["Met"], "urgency": "Expected",
            "severity": "Severe", "certainty": "Likely",
            "headline": "Tin bão gần Biển Đông: mưa to đến rất to ở Nam Bộ trong 24–48 giờ tới",
            "description": "Bão trên Biển Đông đang di chuyển theo hướng Tây; hoàn lưu bão gây "
                           "mưa to đến rất to, lượng mưa phổ biến 80–150 mm, có nơi trên 200 mm; "
                           "nguy cơ ngập úng vùng trũng, đô thị và sạt lở bờ sông.",
            "instruction": "Theo dõi bản tin; gia cố nhà cửa, cắt tỉa cây xanh; không đi qua "
                           "khu vực ngập sâu, nước chảy xiết; chuẩn bị phương án sơ tán.",
            "language": "vi-VN", "expires": (moment + timedelta(hours=24)).isoformat(),
            "areas": [{"desc": "Thành phố Hồ Chí Minh (khu vực Bình Dương cũ)",
                       "circles": ["11.05,106.65 45"]}]}, subject=identifier))


def _dossier_id(seed: int, unit: str, received: date, seq: int) -> str:
    # Shaped like the one-stop shop's numbers (unit code, date received, sequence), with the
    # seed in the unit code so that two seeds never share a dossier.
    code = [w[0] for w in WARDS].index(unit) + 1 if unit in _WARD else 90
    return f"S{seed}.{code:02d}-{received:%y%m%d}-{seq:04d}"


def _officer(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)}.{rng.choice(MIDDLE)}.{rng.choice(GIVEN)}"


def _pick_ward(rng: random.Random) -> str:
    return rng.choices([w[0] for w in WARDS], weights=[w[5] for w in WARDS])[0]


def _ceil_to(moment: datetime, step: timedelta) -> datetime:
    """The first multiple of `step` past midnight at or after `moment` (its own zone)."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    n = math.ceil((moment - midnight) / step)
    return midnight + n * step


def _aqi(pm25: float) -> int:
    """VN_AQI sub-index of a PM2.5 concentration (hourly mean), linear between breakpoints."""
    for i in range(1, len(AQI_PM25)):
        if pm25 <= AQI_PM25[i]:
            lo, hi = AQI_PM25[i - 1], AQI_PM25[i]
            return round(AQI_INDEX[i - 1] + (AQI_INDEX[i] - AQI_INDEX[i - 1])
                         * (pm25 - lo) / (hi - lo))
    return 500


# ============================================================================================ send

def run(url: str, tokens: dict[str, str], seed: int, start: datetime, hours: float,
        speed: float, stop: threading.Event | None = None, batch_every_s: float = 1.0,
        echo: Callable[[str], None] | None = None) -> dict:
    """Send the plan in time order, paced by `speed`; {"sources", "skipped", "stopped"}."""
    # Each tick sends what has come due, one batch per source with that source's token.
    # "sources": {name: {accepted, duplicates, refused}}; "skipped": {name: events not sent
    # (no token, or the token was refused)}; "stopped": whether `stop` ended the run early.
    if speed < 0:
        raise SimulatorError("speed must be 0 (as fast as possible) or more")
    say = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    stop = stop or threading.Event()
    plan = generate(seed, start, hours)
    skipped: dict[str, int] = {}
    for p in plan:
        if not tokens.get(p.source):
            skipped[p.source] = skipped.get(p.source, 0) + 1
    if skipped:
        say("no token for " + ", ".join(f"{name} ({n} events)" for name, n in
                                        sorted(skipped.items())) + ": skipped")
    plan = [p for p in plan if p.source not in skipped]
    counts = {name: {"accepted": 0, "duplicates": 0, "refused": 0}
              for name in sorted({p.source for p in plan})}
    sender = _Sender(url, tokens, counts, skipped, say, stop)
    origin, began = start.astimezone(timezone.utc), time.monotonic()
    i = 0
    while i < len(plan) and not stop.is_set():
        if speed == 0:
            j = min(len(plan), i + MAX_BATCH)
        else:
            due = origin + timedelta(seconds=(time.monotonic() - began) * speed)
            j = i
            while j < len(plan) and plan[j].moment <= due:
                j += 1
        sender.send(plan[i:j])
        i = j
        if speed and i < len(plan):
            # Wait for the next tick, or longer when nothing is due before then.
            next_at = began + (plan[i].moment - origin).total_seconds() / speed
            stop.wait(max(batch_every_s, next_at - time.monotonic()))
    return {"sources": counts, "skipped": skipped, "stopped": stop.is_set()}


class _Sender:
    """POSTs batches per source and keeps the counts."""

    def __init__(self, url: str, tokens: dict[str, str], counts: dict, skipped: dict,
                 say: Callable[[str], None], stop: threading.Event):
        self.endpoint = url.rstrip("/") + "/api/v1/events"
        self.tokens, self.counts, self.skipped, self.say, self.stop = (tokens, counts, skipped,
                                                                       say, stop)

    def send(self, planned: list[Planned]) -> None:
        by_source: dict[str, list[dict]] = {}
        for p in planned:  # a dict keeps the order in which sources first came due
            by_source.setdefault(p.source, []).append(p.event)
        for name, events in by_source.items():
            for i in range(0, len(events), MAX_BATCH):
                if name in self.skipped:  # its token was refused earlier in this run
                    self.skipped[name] += len(events[i:i + MAX_BATCH])
                else:
                    self.post(name, events[i:i + MAX_BATCH])

    def post(self, name: str, events: list[dict], attempt: int = 0) -> None:
        body = json.dumps(events, ensure_ascii=False).encode()
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": "application/cloudevents-batch+json",
            "Authorization": f"Bearer {self.tokens[name]}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = _problem(exc)
            if exc.code == 429 and attempt < 5:
                self.stop.wait(float(exc.headers.get("Retry-After") or 1))
                return self.post(name, events, attempt + 1)
            if exc.code in (401, 403):
                self.say(f"{name}: the engine refused the token ({answer.get('detail', exc)}); "
                         "its remaining events are skipped")
                self.skipped[name] = len(events)
                return None
            if exc.code != 422:
                raise SimulatorError(f"{name}: HTTP {exc.code} from {self.endpoint}: "
                                     f"{answer.get('detail', exc.reason)}") from None
            # 422 on a batch: nothing of it was accepted; `errors` names each event's problems.
            answer = {"accepted": 0, "duplicates": 0, "refused": len(events),
                      "errors": answer.get("errors", [])}
        except urllib.error.URLError as exc:
            raise SimulatorError(f"cannot reach {self.endpoint}: {exc.reason}") from None
        count = self.counts[name]
        for field in ("accepted", "duplicates", "refused"):
            count[field] += int(answer.get(field, 0))
        for refusal in answer.get("errors", []):
            problems = "; ".join(f"{e.get('field') or 'event'} {e.get('message')}"
                                 for e in refusal.get("errors", []))
            self.say(f"{name}: refused {refusal.get('id')}: {problems}")
        return None


def _problem(exc: urllib.error.HTTPError) -> dict:
    try:
        return json.loads(exc.read() or b"{}")
    except ValueError:
        return {}


# ===================================================================================== command

def parse_start(text: str | None, now: datetime | None = None) -> datetime:
    """--start: "auto" (now in office time, else the next working morning), "now", "today",
    "yesterday", or an ISO date-time."""
    calendar = default_calendar()
    tz = calendar.tz
    now = (now or datetime.now(timezone.utc)).astimezone(tz)
    text = (text or "now").strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "now":
        return now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)
    if text == "auto":
        # The demo's default: office activity in the first minute whatever the hour, and never
        # a window in the past (a deadline between its start and now would fire before the
        # stream delivers the event that meets it). In office time: now; else the window runs
        # ahead from the next working morning (07:00), its deadlines firing when the day comes.
        if calendar.is_working_day(now.date()) and time_of_day(7) <= now.time() < time_of_day(17):
            return now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0)
        morning = midnight.replace(hour=7) + (timedelta(0) if now.time() < time_of_day(7)
                                              else timedelta(days=1))
        while not calendar.is_working_day(morning.date()):
            morning += timedelta(days=1)
        return morning
    if text == "today":
        return midnight
    if text == "yesterday":
        return midnight - timedelta(days=1)
    try:
        moment = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise SimulatorError(f"--start: {text!r} is not auto, now, today, yesterday or an "
                             "ISO date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def wait_for_engine(url: str, timeout_s: float = 30.0,
                    stop: threading.Event | None = None) -> bool:
    """True once `url` answers HTTP at all (any status), False after `timeout_s`."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered: a login redirect or a 404 is still a running engine
        except (urllib.error.URLError, OSError):
            if time.monotonic() >= deadline:
                return False
            stop.wait(0.25)
    return False


def load_tokens(path: str | Path) -> dict[str, str]:
    """The demo's source tokens (var/demo-tokens.json: {source name: token})."""
    try:
        tokens = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimulatorError(f"{path}: no tokens file (run `make demo` first)") from None
    except ValueError as exc:
        raise SimulatorError(f"{path}: not JSON ({exc})") from None
    if not isinstance(tokens, dict):
        raise SimulatorError(f"{path}: expected an object of source name → token")
    return {str(k): str(v) for k, v in tokens.items()}
