"""The demo brand's vocabulary: its channels and their costs, tag groups, products and their repurchase
cycles, the kinds of people who buy them, regions, names, order sources, touchpoint kinds and community
series. Every generated row draws on these tables."""

from __future__ import annotations

from dataclasses import dataclass

from communities.models import Community
from contacts.models import Channel, Touchpoint

DAY = 86400
HISTORY_DAYS = 540
CHUNK_CONTACTS = 20_000
GROUP_FILL = 480  # a WeChat group holds 500; operators open the next group a little before it is full

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
    # WeCom friendships that ended: the customer deleted the staff member (流失), or the reverse.
    (T.DELETE_FRIEND, M.WECOM, 1, True, False, ""),
    (T.REMOVED, M.WECOM, 0.8, True, False, ""),
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
