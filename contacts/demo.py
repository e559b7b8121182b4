"""Demo data at any scale: the logic behind ``manage.py seed_demo``.

A brand selling skincare, hair care, mother-and-baby products, tea and supplements runs its private
domain with five operators. The generator makes its last ~18 months: channels and their monthly spend,
tags, products, contacts (acquired faster and faster, from every kind of channel, some referred by
earlier customers), purchases that follow each product's repurchase cycle (most people buy 0–2
times, a core buys often; ~5 % are refunded), touchpoints, and WeChat/WeCom groups of at most 500
people. Every row is a function of ``seed``, the sizes and the day the data is made for, so a run is
reproducible.

How it stays fast (a million contacts, three million purchases and ten million touchpoints in a few
minutes on two cores):

- Rows are made by plain Python from precomputed pools (names, phones, times of day, touchpoint
  kinds), never by calling Faker per row, in chunks of contacts; ids are assigned here, from the
  current maximum, and the sequences are moved past them at the end.
- On PostgreSQL a second thread streams each finished chunk with ``COPY ... FROM STDIN`` while the
  main thread makes the next one, so Python and the server work at the same time. The non-unique
  indexes and the foreign keys of the bulk tables are dropped for the load and recreated afterwards
  in the same transaction: a foreign key re-added is validated in one join instead of one lookup
  per row, and an index built once is much cheaper than ten million random inserts. If anything
  fails the transaction rolls back and the schema is as it was.
- On SQLite (``make run``, CI) the same rows go through ``executemany`` in one transaction.

The denormalised facts on each contact (first/last paid purchase, paid count and sum, last inbound
interaction, live referrals) are computed while its rows are made, with exactly the definitions of
``contact_facts_refresh``. The lifecycle stage is computed the same way as a hint and then checked by
one ``UPDATE ... SET stage = stage_expression()`` restricted to the rows that disagree, so
``stage_expression`` stays the one definition (the update changes nothing unless that definition has
moved on). ``tests/contacts/test_seed_demo.py`` proves the equality by running
``contact_facts_refresh`` over every seeded contact.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import queue
import random
import threading
import time
import zoneinfo
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from communities.models import Community, Membership
from scrm import roles

from .models import (
    Channel,
    ChannelSpend,
    Contact,
    ContactTag,
    Product,
    Purchase,
    PurchaseItem,
    Tag,
    TagGroup,
    Touchpoint,
)
from .services import stage_expression

User = get_user_model()

DAY = 86400
HISTORY_DAYS = 540
CHUNK_CONTACTS = 20_000
GROUP_FILL = 480  # a WeChat group holds 500; operators open the next group a little before it is full

# --- Vocabulary -------------------------------------------------------------------------------

K = Channel.Kind
# name, kind, share of new contacts 18 months ago, share now, cost per lead (CNY), description
CHANNELS = (
    ("抖音信息流", K.PAID_ADS, 12, 9, 46, "巨量引擎信息流投放，落地页一键加企微"),
    ("朋友圈广告", K.PAID_ADS, 7, 5, 38, "微信朋友圈广告，点击添加企业微信"),
    ("百度搜索推广", K.PAID_ADS, 4, 2, 55, "品牌词与品类词搜索推广"),
    ("社群裂变海报", K.SOCIAL_FISSION, 6, 7, 6, "邀请3位好友入群领取试用装"),
    ("分销裂变", K.DISTRIBUTION, 4, 8, 18, "分销员推广，成交返佣15%"),
    ("抖音短视频", K.SHORT_VIDEO, 7, 9, 12, "官方号短视频评论区引流"),
    ("视频号直播", K.SHORT_VIDEO, 3, 10, 9, "每周三、周六晚8点直播，直播间加粉"),
    ("小红书种草", K.NEW_MEDIA, 6, 11, 28, "达人种草笔记 + 品牌号私信"),
    ("公众号文章", K.NEW_MEDIA, 7, 4, 4, "公众号推文文末活码"),
    ("包裹卡", K.PARCEL_CARD, 12, 9, 2.5, "天猫/京东订单包裹卡，扫码领5元无门槛券"),
    ("线下门店", K.OFFLINE_STORE, 10, 7, 15, "门店导购邀请添加企业微信"),
    ("老带新", K.REFERRAL, 8, 10, 10, "老客推荐新客，双方各得20元券"),
    ("自然流量", K.ORGANIC, 10, 6, 0, "搜索公众号、小程序自然进入"),
    ("地推活动", K.OTHER, 4, 3, 20, "商场快闪与社区地推"),
)
SOURCE_TAG_OF_CHANNEL = {
    "抖音信息流": "抖音",
    "抖音短视频": "抖音",
    "朋友圈广告": "广告投放",
    "百度搜索推广": "广告投放",
    "社群裂变海报": "社群裂变",
    "分销裂变": "分销",
    "视频号直播": "视频号",
    "小红书种草": "小红书",
    "公众号文章": "公众号",
    "包裹卡": "包裹卡",
    "线下门店": "门店",
    "老带新": "老客推荐",
    "自然流量": "自然流量",
    "地推活动": "地推",
}
# share of a channel's contacts who were brought in by an earlier customer
REFERRED_SHARE = {K.REFERRAL: 0.95, K.DISTRIBUTION: 0.7, K.SOCIAL_FISSION: 0.5}
CONSENT_SOURCE_OF_KIND = {
    K.OFFLINE_STORE: "门店登记",
    K.PARCEL_CARD: "小程序授权",
    K.NEW_MEDIA: "公众号关注",
    K.OTHER: "活动报名页",
    K.SOCIAL_FISSION: "活动报名页",
}

TAG_GROUPS = (
    # name, exclusive, colour, description, tags
    ("来源", False, "#1e88e5", "客户从哪个渠道来", tuple(dict.fromkeys(SOURCE_TAG_OF_CHANNEL.values()))),
    ("意向度", True, "#e53935", "最近一次沟通判断的购买意向", ("强意向", "中意向", "弱意向")),
    (
        "兴趣偏好",
        False,
        "#8e24aa",
        "聊天与朋友圈互动中表现出的兴趣",
        ("护肤", "彩妆", "母婴育儿", "茶饮", "健康养生", "美食", "穿搭", "健身", "旅行", "追剧", "广场舞"),
    ),
    (
        "人生阶段",
        False,
        "#43a047",
        "用户所处的人生阶段",
        ("学生", "职场新人", "白领", "职场精英", "孕期准妈妈", "宝妈", "自由职业", "银发族"),
    ),
    ("地域", True, "#00897b", "所在城市等级", ("一线城市", "新一线城市", "二线城市", "下沉市场")),
    ("会员等级", True, "#fb8c00", "按累计消费自动评定", ("普通会员", "银卡会员", "金卡会员", "黑金会员")),
    ("运营标记", False, "#6d4c41", "运营人员手动标记", ("高潜KOC", "价格敏感", "需回访", "大促活跃", "沉睡待唤醒")),
)
INTENT_TAG = {"high": "强意向", "medium": "中意向", "low": "弱意向"}
TIER_TAG = {1: "一线城市", 2: "新一线城市", 3: "二线城市", 4: "下沉市场"}
MEMBER_LEVELS = ((50000, "普通会员"), (200000, "银卡会员"), (500000, "金卡会员"))  # cents: below → level

# sku, name, price, repurchase cycle (days), category, popularity
PRODUCTS = (
    ("SK-TRIAL-01", "新人体验装（面膜2片+精华小样）", "9.90", 7, "trial", 3),
    ("SK-MASK-01", "玻尿酸补水面膜 10片装", "129.00", 30, "skin", 5),
    ("SK-ESS-01", "烟酰胺亮肤精华 30ml", "269.00", 60, "skin", 4),
    ("SK-CRM-01", "神经酰胺修护面霜 50g", "239.00", 75, "skin", 3),
    ("SK-CLN-01", "氨基酸洁面乳 120g", "79.00", 45, "skin", 4),
    ("SK-SUN-01", "轻薄防晒乳 SPF50+", "139.00", 45, "skin", 3),
    ("HC-SHP-01", "无硅油控油洗发水 500ml", "69.00", 40, "hair", 4),
    ("HC-CND-01", "修护护发素 400ml", "59.00", 45, "hair", 2),
    ("HC-BDY-01", "香氛沐浴露 500ml", "59.00", 40, "hair", 3),
    ("MB-MLK-1", "婴幼儿配方奶粉 1段 800g", "298.00", 14, "baby", 3),
    ("MB-MLK-2", "较大婴儿配方奶粉 2段 800g", "288.00", 18, "baby", 4),
    ("MB-MLK-3", "幼儿配方奶粉 3段 800g", "268.00", 21, "baby", 4),
    ("MB-DPR-M", "轻薄纸尿裤 M码 64片", "119.00", 10, "baby", 5),
    ("MB-DPR-L", "拉拉裤 L码 48片", "109.00", 10, "baby", 4),
    ("MB-WIP-01", "婴儿手口湿巾 80抽×6包", "49.90", 20, "baby", 4),
    ("TEA-LJ-250", "明前西湖龙井 250g", "368.00", 60, "tea", 3),
    ("TEA-PE-357", "云南普洱熟茶饼 357g", "198.00", 90, "tea", 2),
    ("TEA-OL-20", "桂花乌龙冷泡茶 20包", "59.00", 20, "tea", 4),
    ("TEA-GIFT-01", "东方茶礼盒（龙井+白茶）", "588.00", 90, "tea", 1),
    ("HL-PRB-30", "益生菌固体饮料 30条", "199.00", 30, "health", 4),
    ("HL-VC-20", "维生素C泡腾片 20片", "39.90", 20, "health", 3),
    ("HL-COL-10", "胶原蛋白肽口服液 10瓶", "299.00", 30, "health", 2),
)


@dataclass(frozen=True)
class Persona:
    key: str
    weight: int
    female_share: float
    ages: tuple[int, int]
    occupations: tuple[str, ...]
    stage_tag: str
    interests: tuple[str, ...]
    categories: dict[str, int]
    series: str  # the community series people like this join


PERSONAS = (
    Persona(
        "mom",
        24,
        0.96,
        (25, 38),
        ("全职妈妈", "教师", "护士", "会计", "个体户", "行政"),
        "宝妈",
        ("母婴育儿", "护肤", "美食"),
        {"baby": 8, "skin": 2, "health": 1},
        "mom",
    ),
    Persona(
        "expecting",
        5,
        1.0,
        (23, 35),
        ("教师", "行政", "会计", "公务员"),
        "孕期准妈妈",
        ("母婴育儿", "健康养生"),
        {"baby": 5, "health": 3, "skin": 1},
        "mom",
    ),
    Persona(
        "office",
        27,
        0.72,
        (23, 40),
        ("市场专员", "程序员", "设计师", "销售", "会计", "人事", "产品经理"),
        "白领",
        ("护肤", "彩妆", "穿搭", "健身"),
        {"skin": 6, "hair": 3, "health": 1, "tea": 1, "trial": 1},
        "skin",
    ),
    Persona(
        "newgrad",
        6,
        0.7,
        (22, 26),
        ("实习生", "市场专员", "运营", "销售"),
        "职场新人",
        ("彩妆", "穿搭", "追剧"),
        {"skin": 4, "hair": 3, "trial": 2},
        "skin",
    ),
    Persona(
        "student",
        9,
        0.7,
        (18, 23),
        ("学生",),
        "学生",
        ("彩妆", "穿搭", "追剧", "护肤"),
        {"skin": 4, "hair": 2, "trial": 3},
        "skin",
    ),
    Persona(
        "tea",
        13,
        0.38,
        (30, 55),
        ("公务员", "个体户", "医生", "工程师", "律师", "企业主"),
        "职场精英",
        ("茶饮", "健康养生", "旅行"),
        {"tea": 7, "health": 2},
        "tea",
    ),
    Persona(
        "senior",
        9,
        0.62,
        (55, 70),
        ("退休",),
        "银发族",
        ("健康养生", "茶饮", "广场舞"),
        {"health": 5, "tea": 3},
        "health",
    ),
    Persona(
        "freelance",
        7,
        0.6,
        (22, 45),
        ("自由职业", "主播", "摄影师", "微商"),
        "自由职业",
        ("护肤", "旅行", "美食"),
        {"skin": 4, "hair": 2, "tea": 1, "health": 1},
        "skin",
    ),
)

# province, weight, ((city, tier), ...)
REGIONS = (
    ("广东", 12, (("深圳", 1), ("广州", 1), ("佛山", 2), ("东莞", 2), ("珠海", 3))),
    ("浙江", 9, (("杭州", 2), ("宁波", 2), ("温州", 3), ("金华", 3))),
    ("江苏", 9, (("南京", 2), ("苏州", 2), ("无锡", 3), ("常州", 3))),
    ("上海", 7, (("上海", 1),)),
    ("北京", 6, (("北京", 1),)),
    ("山东", 7, (("青岛", 2), ("济南", 3), ("烟台", 3), ("临沂", 4))),
    ("四川", 6, (("成都", 2), ("绵阳", 4), ("宜宾", 4))),
    ("河南", 5, (("郑州", 2), ("洛阳", 4), ("南阳", 4))),
    ("湖北", 5, (("武汉", 2), ("宜昌", 4), ("襄阳", 4))),
    ("湖南", 4, (("长沙", 2), ("株洲", 4))),
    ("福建", 4, (("厦门", 3), ("福州", 3), ("泉州", 3))),
    ("安徽", 3, (("合肥", 2), ("芜湖", 4))),
    ("重庆", 3, (("重庆", 2),)),
    ("陕西", 3, (("西安", 2), ("宝鸡", 4))),
    ("天津", 2, (("天津", 2),)),
    ("河北", 3, (("石家庄", 3), ("保定", 4))),
    ("辽宁", 2, (("沈阳", 3), ("大连", 3))),
    ("云南", 2, (("昆明", 3), ("大理", 4))),
    ("江西", 2, (("南昌", 3), ("赣州", 4))),
    ("广西", 2, (("南宁", 3), ("桂林", 4))),
)
STORE_CITIES = {"上海", "北京", "深圳", "广州", "杭州", "南京", "苏州", "成都", "武汉", "长沙"}
NICKNAMES = (
    "小鱼儿",
    "Amy",
    "一只喵",
    "阳光总在风雨后",
    "Cherry🍒",
    "岁月静好",
    "Lily",
    "安然",
    "向日葵🌻",
    "木子李",
    "晴天",
    "Coco",
    "Vivian",
    "小太阳",
    "快乐每一天",
    "糖糖妈",
    "豆豆妈妈",
    "乐乐妈咪",
    "Tina",
    "Grace",
    "平安是福",
    "知足常乐",
    "花开半夏",
    "茶香人生",
    "静待花开",
    "Sunny",
    "橙子",
    "momo",
    "大橘子",
    "慢慢来",
)
EMAIL_DOMAINS = ("qq.com", "qq.com", "qq.com", "163.com", "126.com", "foxmail.com", "sina.com")
SKIN_TYPES = ("干性", "油性", "混合性", "敏感肌", "中性")
TEA_TASTES = ("绿茶", "乌龙", "普洱", "红茶", "白茶")
# purchase source, prefix of the shop's order number, weight
ORDER_SOURCES = (
    ("微信小程序", "WX", 40),
    ("有赞商城", "YZ", 14),
    ("视频号小店", "SPH", 14),
    ("天猫旗舰店", "TM", 12),
    ("抖音小店", "DY", 10),
    ("京东自营", "JD", 6),
    ("线下门店", "MD", 4),
)
CAMPAIGNS = ("618大促", "双11预售", "38女神节", "会员日", "新品首发", "年货节")
# local hour of day → relative activity (people chat in the evening)
HOUR_WEIGHTS = (
    0.6,
    0.3,
    0.15,
    0.1,
    0.1,
    0.2,
    0.6,
    1.5,
    2.5,
    3,
    3,
    3.2,
    4,
    3,
    2.8,
    2.8,
    3,
    3.2,
    3.5,
    4,
    5.5,
    6,
    5,
    2.5,
)
PROMOS = ((3, 8), (6, 18), (11, 11), (12, 12))  # 女神节, 618, 双11, 双12: new contacts surge around them

T = Touchpoint.Kind
M = Touchpoint.Medium
# kind, medium, weight, staff is the owner, happens in a group, metadata
TOUCH_KINDS = (
    (T.MESSAGE_OUT, M.WECOM, 15, True, False, ""),
    (T.MESSAGE_OUT, M.CHAT, 6, True, False, ""),
    (T.MESSAGE_OUT, M.SMS, 4, False, False, "campaign"),
    (T.MESSAGE_OUT, M.EMAIL, 1, False, False, "campaign"),
    (T.MESSAGE_IN, M.WECOM, 11, True, False, ""),
    (T.MESSAGE_IN, M.CHAT, 5, True, False, ""),
    (T.LIKE, M.MOMENTS, 8, False, False, ""),
    (T.COMMENT, M.MOMENTS, 3, False, False, ""),
    (T.LIKE, M.VIDEO_CHANNEL, 4, False, False, ""),
    (T.COMMENT, M.VIDEO_CHANNEL, 1, False, False, ""),
    (T.CLICK, M.OFFICIAL_ACCOUNT, 6, False, False, "campaign"),
    (T.CLICK, M.MINI_PROGRAM, 4, False, False, "campaign"),
    (T.CLICK, M.SMS, 1, False, False, "campaign"),
    (T.VISIT, M.MINI_PROGRAM, 8, False, False, ""),
    (T.VISIT, M.OFFLINE, 2, True, False, ""),
    (T.CHECK_IN, M.MINI_PROGRAM, 2, False, False, ""),
    (T.VOTE, M.OFFICIAL_ACCOUNT, 1, False, False, ""),
    (T.MESSAGE_IN, M.GROUP, 7, False, True, ""),
    (T.CHECK_IN, M.GROUP, 5, False, True, ""),
    (T.VOTE, M.GROUP, 1, False, True, ""),
    (T.COMMENT, M.GROUP, 2, False, True, ""),
)

C = Community.Kind
P = Community.Platform
# key, name pattern, kind, platform, rules
SERIES = (
    ("mom", "宝妈交流群{n}群", C.INTEREST, P.WECOM_GROUP, "只聊育儿与好物，禁止广告；每周二晚8点育儿专家答疑"),
    ("skin", "美肤研究所{n}群", C.PRODUCT_USERS, P.WECOM_GROUP, "护肤问题随时问，每周五晒单抽奖"),
    ("tea", "茶友品鉴会{n}群", C.INTEREST, P.WECHAT_GROUP, "以茶会友，每月一次线上品鉴"),
    ("health", "健康养生群{n}群", C.INTEREST, P.WECHAT_GROUP, "每天一条养生小知识，禁止转发未经证实的偏方"),
    ("deals", "福利秒杀群{n}群", C.GENERAL, P.WECOM_GROUP, "每天中午12点整点秒杀，仅限群成员"),
    ("vip", "会员专属群{n}群", C.MEMBERS_ONLY, P.WECOM_GROUP, "复购3次以上的会员专属，生日礼与新品优先试用"),
    ("newprod", "新品体验官{n}期", C.PRODUCT_USERS, P.WECOM_GROUP, "免费试用新品，7天内提交体验报告"),
    ("camp", "21天护肤打卡营第{n}期", C.TRAINING, P.WECOM_GROUP, "每天晚10点前打卡护肤步骤，坚持21天返现"),
    ("store", "{city}门店福利群{n}群", C.GENERAL, P.WECHAT_GROUP, "门店活动与到店福利通知"),
)
CAMP_DAYS = 21
# Odd multipliers: i → i·k mod 2^b is a bijection, so ids derived this way are unique and look random.
WECOM_MULTIPLIER = 0x9E3779B97F4A7C15
UNIONID_MULTIPLIER = 0xB5AD4ECEDA1CE2A9D3C6F5E1B


@dataclass(frozen=True)
class StaffMember:
    username: str
    first_name: str
    role: str
    password: str | None  # None: API token only
    share: int = 0  # relative share of contacts owned
    superuser: bool = False


STAFF = (
    StaffMember("admin", "系统管理员", roles.ADMIN, "demo-admin", superuser=True),
    StaffMember("manager", "周经理", roles.MANAGER, "demo-manager"),
    StaffMember("operator", "小陈", roles.OPERATOR, "demo-operator", share=30),
    StaffMember("op_wang", "小王", roles.OPERATOR, "demo-operator", share=20),
    StaffMember("op_li", "小李", roles.OPERATOR, "demo-operator", share=18),
    StaffMember("op_zhang", "小张", roles.OPERATOR, "demo-operator", share=16),
    StaffMember("op_zhao", "小赵", roles.OPERATOR, "demo-operator", share=14),
    StaffMember("integrator", "有赞商城同步", roles.INTEGRATOR, None),
)
UNOWNED_SHARE = 2  # contacts in the unassigned pool (公海), relative to the shares above


# --- Staff ------------------------------------------------------------------------------------


def demo_staff_ensure() -> dict[str, User]:
    """Create the demo staff users with their roles, if missing. Existing users keep their passwords
    and flags (a demo command must never reset a real admin's password); they are only put in their
    role group. Returns users by username."""
    hashes: dict[str, str] = {}
    users = {}
    for member in STAFF:
        user = User.objects.filter(username=member.username).first()
        if user is None:
            if member.password is None:
                password = make_password(None)
            else:
                # One hash per distinct password: hashing is slow on purpose, and these are public anyway.
                password = hashes.setdefault(member.password, make_password(member.password))
            user = User.objects.create(
                username=member.username,
                first_name=member.first_name,
                password=password,
                is_staff=member.superuser,
                is_superuser=member.superuser,
            )
        user.groups.add(Group.objects.get_or_create(name=member.role)[0])
        users[member.username] = user
    return users


def demo_integrator_token(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


# --- Result -----------------------------------------------------------------------------------


@dataclass
class DemoResult:
    rows: dict[str, int] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    stage_corrections: int = 0
    token: str = ""

    @property
    def total_seconds(self) -> float:
        return sum(seconds for _name, seconds in self.timings)


# --- Row formats ------------------------------------------------------------------------------


class _Format:
    """How values are spelled for one database: rows are tuples of strings (plus NULL), which both
    COPY's text format and SQLite's type affinity read back exactly as Django writes them."""

    def __init__(self, vendor: str) -> None:
        postgres = vendor == "postgresql"
        self.null = "\\N" if postgres else None
        self.true, self.false = ("t", "f") if postgres else ("1", "0")
        # Django stores datetimes on SQLite as naive UTC text.
        self.tz_suffix = "+00" if postgres else ""


def _cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


# --- Generator --------------------------------------------------------------------------------


@dataclass
class _Refs:
    """Ids of the reference rows the generated rows point to."""

    owners: list[int | None]
    owner_cum: list[float]
    staff_ids: list[int]
    channels: list[tuple[int, str, str]]  # id, name, kind
    tags: dict[tuple[str, str], int]
    products: list[tuple[int, int, int, str, int]]  # id, price in cents, cycle days, category, popularity


class _Series:
    """Groups of one kind (宝妈交流群1群, 2群, ...): people join the open group until it is nearly full.
    Camps open one group per cohort (``slot`` = the camp's start)."""

    def __init__(self, key, pattern, kind, platform, rules) -> None:
        self.key, self.pattern, self.kind, self.platform, self.rules = key, pattern, kind, platform, rules
        self.number = 0
        self.open: dict[int | None, list] = {}  # slot → [community id, joins, last member's id]


class _Generator:
    def __init__(self, *, n, seed, purchases_per_contact, touchpoints_per_contact, today, refs, ids, fmt) -> None:
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        self.purchases_target = round(n * purchases_per_contact)
        self.touchpoints_target = round(n * touchpoints_per_contact)
        self.refs = refs
        self.ids = dict(ids)  # next id per table
        self.first_ids = dict(ids)
        self.fmt = fmt
        self.communities: dict[int, list] = {}  # id → [row fields..., first join time]
        self.community_admins: list[tuple] = []
        self.series: dict[str, _Series] = {}
        self._clock(today)

    # Time: internal times are seconds since local midnight of the first day, < self.t_end (local
    # midnight today). They become UTC text through two lookup tables (day, second of day).
    def _clock(self, today: dt.date) -> None:
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        self.today = today
        self.first_day = today - dt.timedelta(days=HISTORY_DAYS)
        self.days = HISTORY_DAYS
        self.t_end = HISTORY_DAYS * DAY
        start = dt.datetime.combine(self.first_day, dt.time(), tzinfo=tz)
        epoch = int(start.timestamp())
        self.shift = epoch % DAY
        utc_day0 = dt.datetime.fromtimestamp(epoch - self.shift, tz=dt.UTC).date()
        self.day_text = [(utc_day0 + dt.timedelta(days=d)).isoformat() + " " for d in range(self.days + 4)]
        suffix = self.fmt.tz_suffix
        self.hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{suffix}" for s in range(DAY)]
        # Shop order numbers carry the local date.
        self.local_day_compact = [
            (self.first_day + dt.timedelta(days=d)).strftime("%Y%m%d") for d in range(self.days + 2)
        ]
        rng = self.rng
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=4096)
        self.tod = [h * 3600 + rng.randrange(3600) for h in hours]

    def ts(self, t: int) -> str:
        d, s = divmod(t + self.shift, DAY)
        return self.day_text[d] + self.hms[s]

    # --- Plan: what must be known across contacts before any row is written -------------------

    def plan(self) -> None:
        rng, n = self.rng, self.n
        rnd = rng.random
        days, t_end, tod = self.days, self.t_end, self.tod
        getrandbits = rng.getrandbits

        # Acquisition: growing over time (density ∝ 0.35 + x), with surges around the big promotions.
        promo_days = []
        for year in (self.first_day.year, self.first_day.year + 1, self.today.year):
            for month, day in PROMOS:
                d = (dt.date(year, month, day) - self.first_day).days
                if 0 <= d < days and d not in promo_days:
                    promo_days.append(d)
        a = 0.35
        norm = 2 * (a + 0.5)
        acq = []
        for _ in range(n):
            if promo_days and rnd() < 0.08:
                d = promo_days[int(rnd() * len(promo_days))] - int(rnd() * 4)
            else:
                d = int((-a + math.sqrt(a * a + norm * rnd())) * days)
            d = min(max(d, 0), days - 1)
            acq.append(d * DAY + tod[getrandbits(12)])
        acq.sort()
        self.acq = acq

        # Channel: the mix drifts from the first shares to the current ones.
        buckets = 12
        channel_of = []
        start = 0
        for b in range(buckets):
            x = (b + 0.5) / buckets
            weights = [c[2] + (c[3] - c[2]) * x for c in CHANNELS]
            stop = bisect_right(acq, (b + 1) * t_end // buckets) if b < buckets - 1 else n
            channel_of.extend(rng.choices(range(len(CHANNELS)), weights=weights, k=stop - start))
            start = stop
        self.channel_of = channel_of

        # Purchases: 42 % never buy, 40 % buy now and then, 18 % are the core; newer contacts have had
        # less time. Counts are the expected share of the target, jittered and rounded at random.
        life = [min(1.0, (t_end - t) / (150 * DAY)) ** 0.7 for t in acq]
        weights = []
        for i in range(n):
            u = rnd()
            if u < 0.42:
                weights.append(0.0)
            elif u < 0.82:
                weights.append(life[i] * rng.lognormvariate(-0.125, 0.5))
            else:
                weights.append(life[i] * min(40.0, 2 + 2 * rng.paretovariate(1.6)))
        self.purchase_plan = _allocate(weights, self.purchases_target, rnd)

        # Referrals: a contact from 老带新 / 分销 / 裂变 was usually brought in by an earlier customer;
        # some customers become hubs (KOCs) who bring many.
        referred_by = [-1] * n
        referral_count = [0] * n
        buyers: list[int] = []
        hubs: list[int] = []
        eligible = 0
        kinds = [c[1] for c in CHANNELS]
        plan = self.purchase_plan
        for i in range(n):
            share = REFERRED_SHARE.get(kinds[channel_of[i]])
            if share and rnd() < share:
                limit = acq[i] - 3 * DAY
                while eligible < len(buyers) and acq[buyers[eligible]] <= limit:
                    eligible += 1
                if eligible:
                    r = hubs[int(rnd() * len(hubs))] if hubs and rnd() < 0.35 else buyers[int(rnd() * eligible)]
                    referred_by[i] = r
                    referral_count[r] += 1
                    hubs.append(r)
            if plan[i]:
                buyers.append(i)
        self.referred_by = referred_by
        self.referral_count = referral_count

        # Touchpoints: buyers interact more; 20 % of non-buyers never answer (only our messages).
        self.silent = [False] * n
        weights = []
        for i in range(n):
            k = plan[i]
            if k == 0 and rnd() < 0.2:
                self.silent[i] = True
                w = 0.25
            else:
                w = 1 + 0.35 * min(k, 12)
            weights.append(w * rng.lognormvariate(-0.18, 0.6) * min(1.0, (t_end - acq[i]) / (60 * DAY)) ** 0.5)
        self.touch_plan = _allocate(weights, self.touchpoints_target, rnd)

    # --- Pools used by the chunks ---------------------------------------------------------------

    def pools(self) -> None:
        from faker.providers.person.zh_CN import Provider as ZhNames

        rng = self.rng
        last_names = list(ZhNames.last_names)
        self.surnames = rng.choices(last_names, weights=list(ZhNames.last_names.values()), k=4096)
        self.given_female = list(ZhNames.first_names_female)
        self.given_male = list(ZhNames.first_names_male)
        self.persona_cum = list(accumulate(p.weight for p in PERSONAS))
        self.region_cum = list(accumulate(r[1] for r in REGIONS))
        # Unique, valid mainland mobile numbers: distinct integers drawn from 2,000 valid 7-digit
        # blocks (13x/15x/18x/19x...) × 10,000 subscriber numbers.
        from .phones import _cn_mobile_prefix_is_valid

        prefixes3 = (
            "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 173 175 176 177 178 "
            "180 181 182 183 184 185 186 187 188 189 191 198 199"
        ).split()
        blocks = max(2000, self.n // 400)
        prefixes: list[str] = []
        seen = set()
        while len(prefixes) < blocks:
            p7 = rng.choice(prefixes3) + f"{rng.randrange(10000):04d}"
            if p7 not in seen and _cn_mobile_prefix_is_valid(p7):
                seen.add(p7)
                prefixes.append(p7)
        self.phone_prefixes = prefixes
        self.phone_numbers = rng.sample(range(blocks * 10000), self.n)
        # Touchpoint kinds: pools sampled by 13 random bits.
        solo = [k for k in TOUCH_KINDS if not k[4]]
        self.touch_pool_member = rng.choices(TOUCH_KINDS, weights=[k[2] for k in TOUCH_KINDS], k=8192)
        self.touch_pool_solo = rng.choices(solo, weights=[k[2] for k in solo], k=8192)
        outbound = [k for k in solo if k[0] == T.MESSAGE_OUT]
        self.touch_pool_silent = rng.choices(outbound, weights=[k[2] for k in outbound], k=8192)
        self.campaign_meta = [json.dumps({"campaign": c}, ensure_ascii=False) for c in CAMPAIGNS]
        # Products by category, weighted by popularity.
        self.products_by_category: dict[str, tuple[list, list]] = {}
        for product in self.refs.products:
            ids, weights = self.products_by_category.setdefault(product[3], ([], []))
            ids.append(product)
            weights.append(product[4])
        self.product_cum = {cat: (items, list(accumulate(w))) for cat, (items, w) in self.products_by_category.items()}
        everything = self.refs.products
        self.product_any = (everything, list(accumulate(p[4] for p in everything)))
        self.source_pool = rng.choices(ORDER_SOURCES, weights=[s[2] for s in ORDER_SOURCES], k=1024)
        self.birth_day0 = dt.date(self.today.year - 72, 1, 1)
        self.birth_text = [
            (self.birth_day0 + dt.timedelta(days=d)).isoformat() for d in range((self.today - self.birth_day0).days)
        ]

    # --- Communities ----------------------------------------------------------------------------

    def _series(self, key: str, city: str = "") -> _Series:
        name = f"{key}:{city}"
        series = self.series.get(name)
        if series is None:
            spec = next(s for s in SERIES if s[0] == key)
            pattern = spec[1].replace("{city}", city)
            series = self.series[name] = _Series(key, pattern, spec[2], spec[3], spec[4])
        return series

    def _community_for(self, series: _Series, t: int, slot: int | None = None, ends: int | None = None) -> list:
        """The open group of a series for someone joining at t: [community id, joins, last member]."""
        state = series.open.get(slot)
        if state is None or state[1] >= GROUP_FILL:
            series.number += 1
            state = series.open[slot] = [self._community_new(series, ends), 0, None]
        state[1] += 1
        first = self.communities[state[0]]
        if t < first[-1]:
            first[-1] = t
        return state

    def _community_new(self, series: _Series, ends: int | None) -> int:
        cid = self._next("communities_community")
        staff = self.refs.staff_ids
        owner, admin = staff[len(self.communities) % len(staff)], staff[(len(self.communities) + 1) % len(staff)]
        archived = ends is not None and ends + 7 * DAY < self.t_end
        chat_id = (
            f"wrOgQh{(cid * WECOM_MULTIPLIER) % (1 << 64):016x}" if series.platform == P.WECOM_GROUP else self.fmt.null
        )
        self.communities[cid] = [
            str(cid),
            series.pattern.format(n=series.number),
            series.kind,
            series.platform,
            str(owner),
            "500",
            series.rules,
            Community.Status.ARCHIVED if archived else Community.Status.ACTIVE,
            chat_id,
            self.t_end,  # becomes the first join time
        ]
        self.community_admins.append((str(cid), str(owner)))
        if admin != owner:
            self.community_admins.append((str(cid), str(admin)))
        return cid

    def community_rows(self) -> list[tuple]:
        rng = self.rng
        rows = []
        for values in self.communities.values():
            created = max(0, values[-1] - DAY - rng.randrange(DAY * 3))
            rows.append((*values[:-1], self.ts(created)))
        return rows

    def _next(self, table: str, count: int = 1) -> int:
        value = self.ids[table]
        self.ids[table] = value + count
        return value

    # --- Chunks ---------------------------------------------------------------------------------

    def chunk(self, start: int, stop: int) -> dict[str, list[tuple]]:
        """Rows for contacts start..stop-1 and everything that belongs to them."""
        rng, f, refs = self.rng, self.fmt, self.refs
        rnd, getrandbits = rng.random, rng.getrandbits
        NULL, TRUE, FALSE = f.null, f.true, f.false
        day_text, hms, shift = self.day_text, self.hms, self.shift
        tod, t_end = self.tod, self.t_end
        tags = {key: str(value) for key, value in refs.tags.items()}
        channels = refs.channels
        acq, channel_of = self.acq, self.channel_of
        purchase_plan, touch_plan, silent_of = self.purchase_plan, self.touch_plan, self.silent
        referred_by, referral_count = self.referred_by, self.referral_count
        surnames, given_f, given_m = self.surnames, self.given_female, self.given_male
        pool_member, pool_solo, pool_silent = self.touch_pool_member, self.touch_pool_solo, self.touch_pool_silent
        campaign_meta = self.campaign_meta
        source_pool = self.source_pool
        local_day_compact = self.local_day_compact
        product_cum, product_any = self.product_cum, self.product_any
        phone_prefixes, phone_numbers = self.phone_prefixes, self.phone_numbers
        birth_text, birth_day0 = self.birth_text, self.birth_day0
        today_ord = self.today.toordinal()
        persona_categories = {p.key: (list(p.categories), list(accumulate(p.categories.values()))) for p in PERSONAS}
        store_cities = [(r[0], city, tier) for r in REGIONS for city, tier in r[2] if city in STORE_CITIES]
        cbase = self.ids["contacts_contact"]
        # Shop order numbers and member ids count from this run's first row, not from database ids, so
        # the same seed makes the same values; they cannot collide, as seeding needs an empty contacts
        # table (and purchases, tags ... belong to contacts).
        order_base = self.first_ids["contacts_purchase"] - 1
        ids = self.ids

        contacts, purchases, items, touchpoints, memberships, contact_tags = [], [], [], [], [], []
        tp_append, p_append, it_append = touchpoints.append, purchases.append, items.append
        ct_append = contact_tags.append
        size = stop - start
        personas = rng.choices(PERSONAS, cum_weights=self.persona_cum, k=size)
        owners = rng.choices(refs.owners, cum_weights=refs.owner_cum, k=size)
        regions = rng.choices(REGIONS, cum_weights=self.region_cum, k=size)
        tid = ids["contacts_touchpoint"]
        pid = ids["contacts_purchase"]
        iid = ids["contacts_purchaseitem"]
        ctid = ids["contacts_contacttag"]

        def ts(t):
            d, s = divmod(t + shift, DAY)
            return day_text[d] + hms[s]

        def pick(cum_pair):
            products, cum = cum_pair
            return products[bisect_right(cum, rnd() * cum[-1])]

        for i in range(start, stop):
            j = i - start
            t0 = acq[i]
            span = t_end - t0
            cid = cbase + i
            scid = str(cid)
            persona = personas[j]
            owner = owners[j]
            sowner = NULL if owner is None else str(owner)
            chan_id, chan_name, chan_kind = channels[channel_of[i]]
            silent = silent_of[i]
            female = rnd() < persona.female_share
            province, _w, cities = regions[j]
            city, tier = cities[int(rnd() * len(cities))]
            if chan_kind == K.OFFLINE_STORE and city not in STORE_CITIES:
                province, city, tier = store_cities[int(rnd() * len(store_cities))]
            elif rnd() < 0.05:
                province = city = ""
                tier = 0

            # Purchases, following the favourite product's repurchase cycle.
            k = purchase_plan[i]
            paid_n = paid_sum = 0
            first_paid = last_paid = None
            purchase_times = []
            if k:
                names, cum = persona_categories[persona.key]
                fav = pick(product_cum[names[bisect_right(cum, rnd() * cum[-1])]])
                cycle = fav[2] * DAY
                t = t0 + (int(rnd() * 3 * 3600) if rnd() < 0.35 else int(rng.expovariate(1 / (12 * DAY))))
                offsets = [t - t0]
                for _ in range(k - 1):
                    gap = cycle * (0.7 + 0.7 * rnd())
                    if rnd() < 0.15:
                        gap *= 2
                    t += int(gap)
                    offsets.append(t - t0)
                room = span - 3600
                if offsets[-1] > room:
                    scale = room / max(offsets[-1], 1) * (0.6 + 0.4 * rnd())
                    offsets = [int(o * scale) for o in offsets]
                source_name, prefix, _w = source_pool[getrandbits(10)]
                if chan_kind == K.OFFLINE_STORE and rnd() < 0.7:
                    source_name, prefix = "线下门店", "MD"
                for o in offsets:
                    t = t0 + o
                    t = t - t % DAY + tod[getrandbits(12)]
                    if t < t0:
                        t = t0 + int(rnd() * 600)
                        if t >= t_end:
                            t = t_end - 1
                    purchase_times.append(t)
                    n_items = 1 if rnd() < 0.65 else (2 if rnd() < 0.7 else 3)
                    amount = 0
                    used = []
                    for x in range(n_items):
                        product = fav if x == 0 and rnd() < 0.7 else pick(product_any)
                        if product in used:
                            continue
                        used.append(product)
                        u = rnd()
                        qty = 1 if u < 0.8 else (2 if u < 0.95 else 3)
                        u = rnd()
                        price = product[1] if u < 0.75 else (product[1] * 9 // 10 if u < 0.9 else product[1] * 8 // 10)
                        amount += qty * price
                        it_append((str(iid), str(pid), str(product[0]), str(qty), _cents(price)))
                        iid += 1
                    text = ts(t)
                    order_id = f"{prefix}{local_day_compact[t // DAY]}{pid - order_base:010d}"
                    if rnd() < 0.05:
                        refunded = min(t + DAY + int(rnd() * 6 * DAY), t_end - 1)
                        p_append(
                            (
                                str(pid),
                                scid,
                                order_id,
                                text,
                                _cents(amount),
                                "refunded",
                                ts(refunded),
                                source_name,
                                ts(t + 5 + int(rnd() * 300)),
                            )
                        )
                    else:
                        p_append(
                            (
                                str(pid),
                                scid,
                                order_id,
                                text,
                                _cents(amount),
                                "paid",
                                NULL,
                                source_name,
                                ts(t + 5 + int(rnd() * 300)),
                            )
                        )
                        paid_n += 1
                        paid_sum += amount
                        if first_paid is None or t < first_paid:
                            first_paid = t
                        if last_paid is None or t > last_paid:
                            last_paid = t
                    pid += 1

            # Communities: not for people who never answer, nor without any touchpoint to record the joins.
            events = []  # (time, kind, medium, staff, community, metadata) of fixed touchpoints
            stays = []  # (community, joined, left)
            if not silent and touch_plan[i]:
                joins = []
                if rnd() < 0.3:
                    joins.append((persona.series, t0 + int(span * 0.1 * rnd())))
                if rnd() < 0.14:
                    joins.append(("deals", t0 + int(span * 0.3 * rnd())))
                if chan_kind == K.OFFLINE_STORE and rnd() < 0.5:
                    joins.append(("store", t0 + int(rnd() * 3600)))
                if k >= 3 and rnd() < 0.6:
                    joins.append(("vip", sorted(purchase_times)[2] + int(rnd() * DAY)))
                if k and rnd() < 0.06:
                    joins.append(("newprod", min(purchase_times) + int(rnd() * 7 * DAY)))
                if persona.series == "skin" and rnd() < 0.05:
                    joins.append(("camp", t0 + int(rnd() * 14 * DAY)))
                for key, joined in joins:
                    if joined >= t_end:
                        joined = t_end - 1
                    slot = ends = left = None
                    if key == "camp":
                        # Enrol before the next cohort starts; everyone leaves a few days after day 21.
                        slot = (joined // (30 * DAY) + 1) * 30 * DAY
                        ends = slot + CAMP_DAYS * DAY
                        if ends + 3 * DAY < t_end:
                            left = ends + int(rnd() * 3 * DAY)
                    elif rnd() < 0.15:
                        left = joined + int((t_end - joined) * rnd())
                    series = self._series(key, city if key == "store" else "")
                    state = self._community_for(series, joined, slot, ends)
                    community = str(state[0])
                    u = rnd()
                    role = "member"
                    if referral_count[i] >= 2 and u < 0.5:
                        role = "koc"
                    elif u < 0.003:
                        role = "admin"
                    u = rnd()
                    invited = NULL
                    if key == "vip":
                        source = "api"
                    elif u < 0.5:
                        source = "qr_code"
                    elif u < 0.75 and state[2] is not None:
                        source, invited = "invite", state[2]
                    elif u < 0.95:
                        source = "staff"
                    else:
                        source = "import"
                    state[2] = scid
                    memberships.append(
                        (
                            str(self._next("communities_membership")),
                            community,
                            scid,
                            role,
                            ts(joined),
                            NULL if left is None else ts(left),
                            source,
                            invited,
                        )
                    )
                    stays.append((community, joined, t_end if left is None else left))
                    events.append((joined, T.JOIN_GROUP, M.GROUP, NULL, community, "{}"))
                    if left is not None:
                        events.append((left, T.LEAVE_GROUP, M.GROUP, NULL, community, "{}"))

            # Touchpoints.
            allot = touch_plan[i]
            last_in = None
            if allot and not silent:
                events.append((t0, T.ADD_FRIEND, M.WECOM if rnd() < 0.7 else M.CHAT, sowner, NULL, "{}"))
            for t, kind, medium, staff, community, meta in events:
                d, s = divmod(t + shift, DAY)
                tp_append((str(tid), scid, medium, kind, day_text[d] + hms[s], staff, community, meta))
                tid += 1
                if last_in is None or t > last_in:
                    last_in = t
            free = allot - len(events)
            if free > 0:
                pool = pool_silent if silent else (pool_member if stays else pool_solo)
                for _ in range(free):
                    kind, medium, _w, by_owner, in_group, meta = pool[getrandbits(13)]
                    r = rnd()
                    if in_group:
                        community, joined, left = stays[int(r * len(stays))]
                        t = joined + int((left - joined) * rnd())
                    else:
                        community = NULL
                        t = t0 + int(span * (r * r if r < 0.6 else r))
                        d = t - t % DAY + tod[getrandbits(12)]
                        t = d if d >= t0 else t
                    d, s = divmod(t + shift, DAY)
                    tp_append(
                        (
                            str(tid),
                            scid,
                            medium,
                            kind,
                            day_text[d] + hms[s],
                            sowner if by_owner else NULL,
                            community,
                            campaign_meta[getrandbits(10) % 6] if meta else "{}",
                        )
                    )
                    tid += 1
                    if kind != T.MESSAGE_OUT and (last_in is None or t > last_in):
                        last_in = t

            # Tags.
            u = rnd()
            if k:
                intent = "high" if u < 0.4 else ("medium" if u < 0.7 else ("low" if u < 0.8 else "none"))
            else:
                intent = "none" if u < 0.4 else ("low" if u < 0.7 else ("medium" if u < 0.9 else "high"))
            tag_rows = [(tags[("来源", SOURCE_TAG_OF_CHANNEL[chan_name])], NULL, "automation", t0)]
            if intent != "none":
                tag_rows.append((tags[("意向度", INTENT_TAG[intent])], sowner, "manual", t0 + int(span * 0.2 * rnd())))
            if rnd() < 0.7:
                tag_rows.append((tags[("人生阶段", persona.stage_tag)], sowner, "manual", t0 + int(span * 0.3 * rnd())))
            if rnd() < 0.6:
                interests = persona.interests
                first = int(rnd() * len(interests))
                picked = (interests[first],) if rnd() < 0.6 else (interests[first], interests[first - 1])
                for interest in picked:
                    tag_rows.append((tags[("兴趣偏好", interest)], sowner, "manual", t0 + int(span * rnd())))
            if tier:
                tag_rows.append((tags[("地域", TIER_TAG[tier])], NULL, "automation", t0 + 60))
            if paid_n:
                level = next((name for limit, name in MEMBER_LEVELS if paid_sum < limit), "黑金会员")
                tag_rows.append((tags[("会员等级", level)], NULL, "automation", last_paid + 600))
            u = rnd()
            if referral_count[i] >= 2:
                tag_rows.append((tags[("运营标记", "高潜KOC")], sowner, "manual", t0 + int(span * rnd())))
            if u < 0.05:
                tag_rows.append((tags[("运营标记", "价格敏感")], sowner, "manual", t0 + int(span * rnd())))
            elif u < 0.12:
                tag_rows.append((tags[("运营标记", "需回访")], sowner, "manual", t0 + int(span * rnd())))
            elif u < 0.16 and paid_n:
                tag_rows.append((tags[("运营标记", "大促活跃")], sowner, "manual", t0 + int(span * rnd())))
            elif u < 0.22 and not silent and last_in is not None and t_end - last_in > 90 * DAY:
                tag_rows.append((tags[("运营标记", "沉睡待唤醒")], sowner, "manual", t_end - int(rnd() * 30 * DAY)))
            for tag_id, by, source, t in tag_rows:
                d, s = divmod((t if t < t_end else t_end - 1) + shift, DAY)
                ct_append((str(ctid), scid, tag_id, by, source, day_text[d] + hms[s]))
                ctid += 1

            # The contact, with its facts.
            if rnd() < 0.14:
                name = NICKNAMES[int(rnd() * len(NICKNAMES))]
            else:
                given = given_f if female else given_m
                name = given[int(rnd() * len(given))]
                if len(name) == 1 and rnd() < 0.6:
                    name += given[int(rnd() * len(given))][-1]
                name = surnames[getrandbits(12)] + name
            number = phone_numbers[i]
            phone = "+86" + phone_prefixes[number // 10000] + f"{number % 10000:04d}" if rnd() < 0.93 else NULL
            email = f"{10_000_000 + int(rnd() * 3_989_999_999)}@{EMAIL_DOMAINS[int(rnd() * 7)]}" if rnd() < 0.15 else ""
            external_id = f"YZ{i + 1:010d}" if rnd() < 0.65 else NULL
            wecom = f"wm{((i + 1) * WECOM_MULTIPLIER) % (1 << 64):016x}" if rnd() < 0.75 else NULL
            unionid = f"o{((i + 1) * UNIONID_MULTIPLIER) % (1 << 100):026x}" if rnd() < 0.55 else NULL
            gender = ("female" if female else "male") if rnd() < 0.92 else "unknown"
            if rnd() < 0.75:
                lo, hi = persona.ages
                age_days = int((lo + (hi - lo + 1) * rnd()) * 365.25)
                birthday = birth_text[today_ord - age_days - birth_day0.toordinal()]
            else:
                birthday = NULL
            occupation = persona.occupations[int(rnd() * len(persona.occupations))] if rnd() < 0.85 else ""
            ref = referred_by[i]
            consent_at = consent_source = opted_out = NULL
            consent = FALSE
            if rnd() < 0.88:
                consent = TRUE
                consent_at = ts(t0 + int(rnd() * 600))
                consent_source = CONSENT_SOURCE_OF_KIND.get(chan_kind, "企业微信好友验证")
                if rnd() < 0.045:
                    consent = FALSE
                    opted_out = ts(t0 + 600 + int((span - 600) * rnd()))
            else:
                consent_source = ""
            attributes = "{}"
            if persona.key in ("mom", "expecting") and rnd() < 0.6:
                if persona.key == "mom":
                    attributes = f'{{"宝宝月龄": {1 + int(rnd() * 47)}}}'
                else:
                    attributes = (
                        f'{{"预产期": "{(self.today + dt.timedelta(days=20 + int(rnd() * 230))).isoformat()}"}}'
                    )
            elif persona.series == "skin" and rnd() < 0.4:
                attributes = f'{{"肤质": "{SKIN_TYPES[int(rnd() * 5)]}"}}'
            elif persona.key == "tea" and rnd() < 0.4:
                attributes = f'{{"口味偏好": "{TEA_TASTES[int(rnd() * 5)]}"}}'
            refs_n = referral_count[i]
            if paid_n and refs_n:
                stage = "advocate"
            elif paid_n >= 2:
                stage = "repeat"
            elif paid_n:
                stage = "customer"
            elif last_in is not None:
                stage = "engaged"
            else:
                stage = "lead"
            updated = max(t0, last_paid or 0, last_in or 0)
            acquired = ts(t0)
            contacts.append(
                (
                    scid,
                    name,
                    phone,
                    email,
                    external_id,
                    wecom,
                    unionid,
                    gender,
                    birthday,
                    province,
                    city,
                    occupation,
                    str(chan_id),
                    acquired,
                    sowner,
                    intent,
                    stage,
                    NULL if ref < 0 else str(cbase + ref),
                    attributes,
                    consent,
                    consent_at,
                    consent_source,
                    opted_out,
                    NULL,
                    NULL,
                    NULL if first_paid is None else ts(first_paid),
                    NULL if last_paid is None else ts(last_paid),
                    str(paid_n),
                    _cents(paid_sum),
                    NULL if last_in is None else ts(last_in),
                    str(refs_n),
                    acquired,
                    ts(updated),
                )
            )

        ids["contacts_touchpoint"], ids["contacts_purchase"] = tid, pid
        ids["contacts_purchaseitem"], ids["contacts_contacttag"] = iid, ctid
        return {
            "contacts_contact": contacts,
            "contacts_purchase": purchases,
            "contacts_purchaseitem": items,
            "contacts_touchpoint": touchpoints,
            "communities_membership": memberships,
            "contacts_contacttag": contact_tags,
        }


def _allocate(weights: list[float], total: int, rnd: Callable[[], float]) -> list[int]:
    """Integer counts proportional to ``weights`` summing to about ``total`` (rounded at random)."""
    weight_sum = sum(weights) or 1.0
    scale = total / weight_sum
    counts = []
    for w in weights:
        x = w * scale
        whole = int(x)
        counts.append(whole + (1 if rnd() < x - whole else 0))
    return counts


# --- Table layouts ----------------------------------------------------------------------------

COLUMNS = {
    "contacts_contact": (
        "id",
        "name",
        "phone",
        "email",
        "external_id",
        "wecom_external_userid",
        "wechat_unionid",
        "gender",
        "birthday",
        "region",
        "city",
        "occupation",
        "channel_id",
        "acquired_at",
        "owner_id",
        "intent_level",
        "stage",
        "referred_by_id",
        "attributes",
        "marketing_consent",
        "consent_at",
        "consent_source",
        "opted_out_at",
        "erased_at",
        "merged_into_id",
        "first_purchase_at",
        "last_purchase_at",
        "purchase_count",
        "total_spent",
        "last_interaction_at",
        "referral_count",
        "created_at",
        "updated_at",
    ),
    "communities_community": (
        "id",
        "name",
        "kind",
        "platform",
        "owner_id",
        "capacity",
        "rules",
        "status",
        "external_chat_id",
        "created_at",
    ),
    "communities_community_admins": ("community_id", "user_id"),
    "contacts_purchase": (
        "id",
        "contact_id",
        "external_order_id",
        "purchased_at",
        "amount",
        "status",
        "refunded_at",
        "source",
        "created_at",
    ),
    "contacts_purchaseitem": ("id", "purchase_id", "product_id", "quantity", "unit_price"),
    "contacts_touchpoint": (
        "id",
        "contact_id",
        "medium",
        "kind",
        "occurred_at",
        "staff_id",
        "community_id",
        "metadata",
    ),
    "communities_membership": (
        "id",
        "community_id",
        "contact_id",
        "role",
        "joined_at",
        "left_at",
        "join_source",
        "invited_by_id",
    ),
    "contacts_contacttag": ("id", "contact_id", "tag_id", "tagged_by_id", "source", "created_at"),
}
MODELS = {
    "contacts_contact": Contact,
    "communities_community": Community,
    "contacts_purchase": Purchase,
    "contacts_purchaseitem": PurchaseItem,
    "contacts_touchpoint": Touchpoint,
    "communities_membership": Membership,
    "contacts_contacttag": ContactTag,
}
# Bulk tables whose secondary indexes and foreign keys are rebuilt around a PostgreSQL load.
BULK_TABLES = (
    "contacts_contact",
    "contacts_purchase",
    "contacts_purchaseitem",
    "contacts_touchpoint",
    "communities_membership",
    "contacts_contacttag",
)


def _check_layouts() -> None:
    """Fail early and clearly if a model gained a column the generator does not fill."""
    for table, model in MODELS.items():
        columns = {f.column for f in model._meta.concrete_fields}
        mine = set(COLUMNS[table])
        missing = sorted(
            f.column
            for f in model._meta.concrete_fields
            if f.column not in mine and not f.null and not f.has_db_default()
        )
        if mine - columns or missing:
            raise RuntimeError(
                f"contacts/demo.py is out of date for {table}: unknown columns {sorted(mine - columns)}, "
                f"unfilled required columns {missing}"
            )


# --- Writers ----------------------------------------------------------------------------------


class _SqlWriter:
    """executemany in the current transaction (SQLite, or any database without COPY)."""

    def __init__(self) -> None:
        self.cursor = connection.cursor()

    def write(self, batches: list[tuple[str, list[tuple]]]) -> None:
        for table, rows in batches:
            if not rows:
                continue
            columns = COLUMNS[table]
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            for start in range(0, len(rows), 5000):
                self.cursor.executemany(sql, rows[start : start + 5000])

    def close(self) -> None:
        self.cursor.close()


class _CopyWriter:
    """COPY from a second thread, so the next chunk is made while this one is stored. psycopg2 lets
    go of the GIL while it sends, and the connection may be shared by threads; the main thread does
    not touch it until ``close``."""

    def __init__(self) -> None:
        connection.ensure_connection()
        self.raw = connection.connection
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="seed-demo-copy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        cursor = self.raw.cursor()
        try:
            while True:
                batches = self.queue.get()
                if batches is None:
                    return
                if self.error is not None:
                    continue
                for table, rows in batches:
                    if not rows:
                        continue
                    data = ("\n".join(map("\t".join, rows)) + "\n").encode()
                    columns = ", ".join(COLUMNS[table])
                    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.BytesIO(data), size=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            while self.queue.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            cursor.close()

    def write(self, batches: list[tuple[str, list[tuple]]]) -> None:
        if self.error is not None:
            self.close()
        self.queue.put(batches)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _pg_secondary_schema(cursor) -> tuple[list[str], list[str]]:
    """Statements that drop, and statements that recreate, the non-unique indexes and the foreign keys
    of the bulk tables, read from the catalog (so indexes added later by migrations are included)."""
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])
        ORDER BY 1, 2
        """,
        [list(BULK_TABLES)],
    )
    foreign_keys = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisunique AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1
        """,
        [list(BULK_TABLES)],
    )
    indexes = cursor.fetchall()
    drop = [f"ALTER TABLE {table} DROP CONSTRAINT {name}" for table, name, _d in foreign_keys]
    drop += [f"DROP INDEX {name}" for name, _d in indexes]
    create = [definition for _name, definition in indexes]
    create += [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in foreign_keys]
    return drop, create


# --- Reference data ---------------------------------------------------------------------------


def _reference_data() -> tuple[list, dict, list]:
    channels = []
    for name, kind, _a, _b, _cost, description in CHANNELS:
        channel, _created = Channel.objects.get_or_create(
            name=name, defaults={"kind": kind, "description": description}
        )
        channels.append((channel.pk, name, channel.kind))
    tags = {}
    for order, (group_name, exclusive, colour, description, names) in enumerate(TAG_GROUPS):
        group, _created = TagGroup.objects.get_or_create(
            name=group_name, defaults={"exclusive": exclusive, "description": description, "sort_order": order * 10}
        )
        existing = {t.name: t.pk for t in Tag.objects.filter(group=group)}
        Tag.objects.bulk_create([Tag(group=group, name=n, color=colour) for n in names if n not in existing])
        existing = {t.name: t.pk for t in Tag.objects.filter(group=group)}
        tags.update({(group_name, n): existing[n] for n in names})
    products = []
    for sku, name, price, cycle, category, popularity in PRODUCTS:
        product, _created = Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "price": Decimal(price), "repurchase_cycle_days": cycle}
        )
        products.append(
            (product.pk, int(product.price * 100), product.repurchase_cycle_days or cycle, category, popularity)
        )
    return channels, tags, products


def _channel_spend(generator: _Generator, channels: list) -> int:
    """Monthly spend per channel: its leads that month × its cost per lead, ±15 %."""
    rng = random.Random(f"{generator.seed}-spend")  # its own stream: the rows do not depend on it
    leads: dict[tuple[int, int], int] = {}
    month_of_day = []
    for d in range(generator.days):
        day = generator.first_day + dt.timedelta(days=d)
        month_of_day.append(day.year * 12 + day.month - 1)
    for channel, t in zip(generator.channel_of, generator.acq, strict=True):
        key = (channel, month_of_day[t // DAY])
        leads[key] = leads.get(key, 0) + 1
    rows = []
    first = generator.first_day.year * 12 + generator.first_day.month - 1
    last = generator.today.year * 12 + generator.today.month - 1
    for index, (channel_id, _name, _kind) in enumerate(channels):
        cost = CHANNELS[index][4]
        if not cost:
            continue
        for month in range(first, last + 1):
            count = leads.get((index, month), 0)
            if not count:
                continue
            start = dt.date(month // 12, month % 12 + 1, 1)
            end = dt.date(month // 12 + (month % 12 + 1) // 12, (month % 12 + 1) % 12 + 1, 1) - dt.timedelta(days=1)
            amount = Decimal(round(count * cost * (0.85 + 0.3 * rng.random()), 2)).quantize(Decimal("0.01"))
            rows.append(
                ChannelSpend(channel_id=channel_id, start_date=start, end_date=end, amount=amount, note="月度投放")
            )
    ChannelSpend.objects.bulk_create(rows)
    return len(rows)


def _next_ids(tables) -> dict[str, int]:
    ids = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT MAX(id) FROM {table}")
            current = cursor.fetchone()[0] or 0
            if connection.vendor == "postgresql":
                cursor.execute(f"SELECT last_value, is_called FROM {_pg_sequence(cursor, table)}")
                last_value, is_called = cursor.fetchone()
                current = max(current, last_value if is_called else last_value - 1)
            ids[table] = current + 1
    return ids


def _pg_sequence(cursor, table: str) -> str:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    return cursor.fetchone()[0]


# --- Entry point ------------------------------------------------------------------------------


def demo_data_seed(
    *,
    contacts: int,
    seed: int = 1,
    purchases_per_contact: float = 3.0,
    touchpoints_per_contact: float = 10.0,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Fill an empty database with the demo brand's data (see the module docstring). All in one
    transaction; the demo staff are created first (``demo_staff_ensure``)."""
    if contacts < 1:
        raise ValueError("contacts must be at least 1")
    _check_layouts()
    today = today or timezone.localdate()
    result = DemoResult()
    postgres = connection.vendor == "postgresql"
    fmt = _Format(connection.vendor)
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings.append((name, now - clock))
        log(f"  {name:<34} {now - clock:8.1f} s")
        clock = now

    with transaction.atomic():
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO off")
                cursor.execute("SET LOCAL maintenance_work_mem TO '512MB'")
                cursor.execute("SET LOCAL work_mem TO '64MB'")
        users = demo_staff_ensure()
        operators = [m for m in STAFF if m.share]
        channels, tags, products = _reference_data()
        refs = _Refs(
            owners=[users[m.username].pk for m in operators] + [None],
            owner_cum=list(accumulate([m.share for m in operators] + [UNOWNED_SHARE])),
            staff_ids=[users[m.username].pk for m in operators],
            channels=channels,
            tags=tags,
            products=products,
        )
        ids = _next_ids([*MODELS])
        generator = _Generator(
            n=contacts,
            seed=seed,
            purchases_per_contact=purchases_per_contact,
            touchpoints_per_contact=touchpoints_per_contact,
            today=today,
            refs=refs,
            ids=ids,
            fmt=fmt,
        )
        phase("staff, channels, tags, products")
        generator.plan()
        generator.pools()
        result.rows["contacts_channelspend"] = _channel_spend(generator, channels)
        phase("plan (times, referrals, phones)")

        drop, create = [], []
        if postgres:
            with connection.cursor() as cursor:
                # Check the deferred foreign keys of the rows written so far now: a table with pending
                # trigger events cannot be altered.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                drop, create = _pg_secondary_schema(cursor)
                for statement in drop:
                    cursor.execute(statement)
            phase(f"drop {len(drop)} indexes and foreign keys")
        writer = _CopyWriter() if postgres else _SqlWriter()
        counts = dict.fromkeys(BULK_TABLES, 0)
        chunk = CHUNK_CONTACTS
        try:
            for start in range(0, contacts, chunk):
                stop = min(contacts, start + chunk)
                tables = generator.chunk(start, stop)
                for table, rows in tables.items():
                    counts[table] += len(rows)
                writer.write(list(tables.items()))
                if contacts > chunk:
                    log(
                        f"    {stop:>10,} contacts  {counts['contacts_purchase']:>11,} purchases  "
                        f"{counts['contacts_touchpoint']:>12,} touchpoints  {time.perf_counter() - clock:7.1f} s"
                    )
            communities = generator.community_rows()
            writer.write(
                [("communities_community", communities), ("communities_community_admins", generator.community_admins)]
            )
        finally:
            writer.close()
        counts["communities_community"] = len(communities)
        phase("generate and load rows")

        with connection.cursor() as cursor:
            if postgres:
                slowest = []
                for statement in create:
                    started = time.perf_counter()
                    cursor.execute(statement)
                    slowest.append((time.perf_counter() - started, statement))
                for seconds, statement in sorted(slowest, reverse=True)[:8]:
                    if seconds >= 1:
                        log(f"    {seconds:6.1f} s  {statement[:110]}")
                phase(f"recreate {len(create)} indexes and foreign keys")
                for table in MODELS:
                    cursor.execute(
                        f"SELECT setval(%s, GREATEST((SELECT MAX(id) FROM {table}), 1))", [_pg_sequence(cursor, table)]
                    )
        new_contacts = Contact.objects.filter(pk__gte=ids["contacts_contact"])
        result.stage_corrections = new_contacts.exclude(stage=stage_expression()).update(stage=stage_expression())
        phase("stage check (stage_expression)")
        if postgres:
            with connection.cursor() as cursor:
                for table in (*MODELS, "contacts_channelspend"):
                    cursor.execute(f"ANALYZE {table}")
            phase("analyze")
    result.rows.update(counts)
    result.rows["communities_community_admins"] = len(generator.community_admins)
    result.token = demo_integrator_token(users["integrator"])
    return result


def demo_vacuum() -> None:
    """VACUUM (ANALYZE) the freshly loaded contacts table outside any transaction, so its visibility
    map is set and counts can use index-only scans right away (PostgreSQL only)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) contacts_contact")
