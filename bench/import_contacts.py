"""Benchmark: import a large contacts CSV through ``contacts.imports`` versus a plain PostgreSQL ``COPY``.

Run by hand (not part of the test suite), against a throw-away PostgreSQL database::

    createdb -h 127.0.0.1 -U postgres scrm_bench_import
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scrm_bench_import \\
        .venv/bin/python bench/import_contacts.py --rows 1000000

It generates a realistic CSV (Chinese names, valid mainland mobiles in a few spellings, channels, regions,
tags, owners, consent; cached under var/bench/), then times

(b) the real import through the service (validation, phone normalisation, lookups, contacts and their tag
    links) into an empty contacts table;
(c) the same file imported a second time (every row unchanged: nothing is written);
(a) the floor: a plain ``COPY`` of the very contacts (b) created, dumped with ``COPY ... TO``, back into the
    emptied contacts_contact table itself: the real, logged table with all its indexes (20 today) and its
    foreign keys, timed with its commit; best of two runs. That is the least any import of these rows must
    cost; the import additionally validates and resolves the text, and writes ~1.6 tag links per contact
    (6 more indexes) that (a) does not: (a2) times a plain ``COPY`` of those links, for reference.
For reference it also times a ``COPY`` of the raw CSV file into (r1) an UNLOGGED table of 17 text columns
without indexes (the absolute minimum) and (r2) a logged table with the CSV's columns typed (date,
timestamptz; text/varchar otherwise) and the unique and composite indexes contacts_contact has on them.

Only databases named scrm_b, test_scrm_b or scrm_bench_import are accepted: the script empties the
contacts tables.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
ALLOWED_DATABASES = {"scrm_b", "test_scrm_b", "scrm_bench_import"}
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/scrm_bench_import"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬芳燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝丽阳妮宝贝初程梵罡恒鸿桦骅剑娇纪宽苛灵玛媚琪晴容睿烁堂唯威韦雯苇萱阅彦宇雨洋忠宗曼紫逸贤蝶菡绿蓝儿翠烟"
REGIONS = [
    ("广东", "广州"),
    ("广东", "深圳"),
    ("广东", "佛山"),
    ("上海", "上海"),
    ("北京", "北京"),
    ("浙江", "杭州"),
    ("浙江", "宁波"),
    ("江苏", "南京"),
    ("江苏", "苏州"),
    ("四川", "成都"),
    ("湖北", "武汉"),
    ("湖南", "长沙"),
    ("福建", "厦门"),
    ("福建", "福州"),
    ("山东", "青岛"),
    ("山东", "济南"),
    ("河南", "郑州"),
    ("陕西", "西安"),
    ("重庆", "重庆"),
    ("天津", "天津"),
    ("辽宁", "沈阳"),
    ("云南", "昆明"),
    ("安徽", "合肥"),
    ("江西", "南昌"),
]
OCCUPATIONS = [
    "白领",
    "教师",
    "医生",
    "护士",
    "宝妈",
    "学生",
    "自由职业",
    "公务员",
    "工程师",
    "设计师",
    "销售",
    "个体户",
    "财务",
    "程序员",
]
CHANNELS = [
    ("抖音信息流", "paid_ads"),
    ("朋友圈广告", "paid_ads"),
    ("老带新裂变", "social_fission"),
    ("分销裂变", "distribution"),
    ("视频号直播", "short_video"),
    ("小红书种草", "new_media"),
    ("包裹卡", "parcel_card"),
    ("门店扫码", "offline_store"),
]
TAG_GROUPS = {
    "意向度": (True, ["强意向", "弱意向", "无意向"]),
    "兴趣": (False, ["护肤", "彩妆", "母婴", "健身", "美食", "旅行"]),
    "来源活动": (False, ["双11", "618", "年货节"]),
}
OWNERS = [f"bench_op{n:02d}" for n in range(1, 21)]
MOBILE_PREFIXES = [
    "138",
    "139",
    "137",
    "136",
    "135",
    "150",
    "151",
    "152",
    "158",
    "159",
    "186",
    "187",
    "188",
    "189",
    "133",
    "153",
    "180",
    "181",
    "177",
    "199",
]
HEADER = [
    "external_id", "phone", "name", "email", "gender", "birthday", "region", "city", "occupation", "channel",
    "acquired_at", "owner", "intent_level", "tags", "marketing_consent", "consent_source", "wecom_external_userid",
]  # fmt: skip


def generate_csv(path: Path, rows: int, seed: int = 20261123) -> None:
    import csv

    from contacts.phones import normalize_phone

    rng = random.Random(seed)
    interest = TAG_GROUPS["兴趣"][1]
    campaigns = TAG_GROUPS["来源活动"][1]
    intents = TAG_GROUPS["意向度"][1]
    start = 1704038400  # 2024-01-01 00:00 +08:00
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        serial = 0
        for i in range(rows):
            while True:  # a valid, unique mainland mobile: prefix + a bijective scramble of the serial
                prefix = MOBILE_PREFIXES[serial % len(MOBILE_PREFIXES)]
                national = prefix + f"{(serial // len(MOBILE_PREFIXES) * 48271 + 12345) % 10**8:08d}"
                serial += 1
                try:
                    normalize_phone(national)
                    break
                except Exception:
                    continue
            has_ext = rng.random() < 0.75
            has_phone = not has_ext or rng.random() < 0.95
            spelling = rng.random()
            if spelling < 0.85:
                phone = national
            elif spelling < 0.95:
                phone = f"+86 {national[:3]} {national[3:7]} {national[7:]}"
            else:
                phone = f"{national[:3]}-{national[3:7]}-{national[7:]}"
            region, city = rng.choice(REGIONS)
            ts = time.gmtime(start + rng.randrange(2 * 365 * 86400) + 8 * 3600)
            acquired = time.strftime("%Y-%m-%d" if rng.random() < 0.05 else "%Y-%m-%d %H:%M:%S", ts)
            tags = []
            if rng.random() < 0.6:
                tags.append("意向度:" + rng.choice(intents))
            tags += ["兴趣:" + t for t in rng.sample(interest, rng.choice((0, 0, 1, 1, 2)))]
            if rng.random() < 0.2:
                tags.append("来源活动:" + rng.choice(campaigns))
            consent = rng.random() < 0.7
            writer.writerow(
                [
                    f"CRM{i:09d}" if has_ext else "",
                    phone if has_phone else "",
                    rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2)))),
                    f"user{i}@{rng.choice(('qq.com', '163.com', 'gmail.com', '126.com'))}"
                    if rng.random() < 0.25
                    else "",
                    rng.choice(("male", "female", "男", "女", "unknown", "")),
                    f"{rng.randint(1960, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                    if rng.random() < 0.55
                    else "",
                    region,
                    city,
                    rng.choice(OCCUPATIONS) if rng.random() < 0.6 else "",
                    rng.choice(CHANNELS)[0] if rng.random() < 0.95 else "",
                    acquired,
                    rng.choice(OWNERS),
                    rng.choice(("none", "low", "medium", "high", "")),
                    "|".join(tags),
                    rng.choice(("true", "是", "1")) if consent else rng.choice(("false", "否", "0")),
                    rng.choice(("wecom_welcome", "mini_program", "offline_form")) if consent else "",
                    f"wm{i:030x}" if rng.random() < 0.4 else "",
                ]
            )
    tmp.rename(path)


def reference_data() -> None:
    from django.contrib.auth import get_user_model

    from contacts.models import Channel, Tag, TagGroup

    User = get_user_model()
    for name, kind in CHANNELS:
        Channel.objects.get_or_create(name=name, defaults={"kind": kind})
    for order, (group_name, (exclusive, names)) in enumerate(TAG_GROUPS.items()):
        group, _ = TagGroup.objects.get_or_create(
            name=group_name, defaults={"exclusive": exclusive, "sort_order": order}
        )
        for name in names:
            Tag.objects.get_or_create(group=group, name=name)
    for username in OWNERS:
        User.objects.get_or_create(username=username)


FLOOR_TABLE = """
CREATE TABLE bench_copy_floor (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    external_id varchar(64), phone varchar(20), name varchar(100), email varchar(254), gender varchar(8),
    birthday date, region varchar(64), city varchar(64), occupation varchar(64), channel varchar(100),
    acquired_at timestamptz, owner varchar(150), intent_level varchar(8), tags text, marketing_consent text,
    consent_source varchar(64), wecom_external_userid varchar(64)
);
CREATE UNIQUE INDEX bench_floor_external_id ON bench_copy_floor (external_id);
CREATE UNIQUE INDEX bench_floor_phone ON bench_copy_floor (phone);
CREATE UNIQUE INDEX bench_floor_wecom ON bench_copy_floor (wecom_external_userid);
CREATE INDEX bench_floor_owner ON bench_copy_floor (owner, acquired_at DESC);
CREATE INDEX bench_floor_channel ON bench_copy_floor (channel, acquired_at DESC);
CREATE INDEX bench_floor_acquired ON bench_copy_floor (acquired_at DESC, id DESC);
"""
MINIMAL_TABLE = "CREATE UNLOGGED TABLE bench_copy_minimal (" + ", ".join(f"{c} text" for c in HEADER) + ")"


def copy_file(path: Path, table: str, create_sql: str) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(create_sql)
        columns = ", ".join(HEADER)
        started = time.perf_counter()
        with path.open("rb") as fh:
            cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)", fh)
        elapsed = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {table}")
    return elapsed


def cursor_checkpoint() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def empty_contacts() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE contacts_contacttag, contacts_contact RESTART IDENTITY CASCADE")
        cursor.execute("CHECKPOINT")


def timed_import(path: Path, batch_size: int):
    from contacts.imports import import_csv

    last = [time.perf_counter()]

    def progress(report):
        now = time.perf_counter()
        if now - last[0] > 15:
            print(f"      … {report.processed_rows:,} rows", flush=True)
            last[0] = now

    started = time.perf_counter()
    with path.open("rb") as fh:
        report = import_csv(kind="contacts", fileobj=fh, actor=None, batch_size=batch_size, on_progress=progress)
    return time.perf_counter() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="run the first import under cProfile and print the top")
    args = parser.parse_args()

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres") or parsed.path.lstrip("/") not in ALLOWED_DATABASES:
        print(f"DATABASE_URL must point at PostgreSQL database {sorted(ALLOWED_DATABASES)}; got {url}", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from contacts.imports import BATCH_SIZE

    batch_size = args.batch_size or BATCH_SIZE
    call_command("migrate", verbosity=0)
    reference_data()

    bench_dir = Path(settings.VAR_DIR) / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / f"contacts-{args.rows}.csv"
    if not path.exists():
        print(f"Generating {args.rows:,} rows into {path} …", flush=True)
        started = time.perf_counter()
        generate_csv(path, args.rows)
        print(f"  generated in {time.perf_counter() - started:.1f}s", flush=True)
    size_mb = path.stat().st_size / 1e6
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(",")[0]

    print(f"\nImport benchmark: {args.rows:,} contact rows, {size_mb:.0f} MB, {version}, batch {batch_size:,}")
    print(f"  machine: {os.cpu_count()} CPUs (shared with other jobs: figures are indicative)\n")

    print("  (r) COPY of the CSV file …", flush=True)
    minimal = copy_file(path, "bench_copy_minimal", MINIMAL_TABLE)
    file_floor = copy_file(path, "bench_copy_floor", FLOOR_TABLE)

    print("  (b) import into an empty contacts table …", flush=True)
    empty_contacts()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        first, report = timed_import(path, batch_size)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        first, report = timed_import(path, batch_size)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contacts_contact")
        contacts = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM contacts_contacttag")
        links = cursor.fetchone()[0]
    print("  (c) second import of the same file …", flush=True)
    cursor_checkpoint()
    second, again = timed_import(path, batch_size)

    print("  (a) COPY of the same rows into contacts_contact and contacts_contacttag (best of 2) …", flush=True)
    dumps = {table: bench_dir / f"{table}-{args.rows}.copy" for table in ("contacts_contact", "contacts_contacttag")}
    with connection.cursor() as cursor:
        for table, dump in dumps.items():
            with dump.open("wb") as fh:
                cursor.cursor.copy_expert(f"COPY {table} TO STDOUT", fh)
    floor = links_floor = float("inf")
    for _attempt in range(2):
        empty_contacts()
        timings = []
        for table, dump in dumps.items():
            # Each table in its own transaction, timed with its commit (which runs the deferred foreign-key
            # checks, as it does for the import).
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor, dump.open("rb") as fh:
                cursor.cursor.copy_expert(f"COPY {table} FROM STDIN", fh)
            timings.append(time.perf_counter() - started)
        floor, links_floor = min(floor, timings[0]), min(links_floor, timings[1])
    for dump in dumps.values():
        dump.unlink()

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'contacts_contact'")
        indexes = cursor.fetchone()[0]
    rows = args.rows
    print()
    print(f"  {'step':<62} {'seconds':>8} {'rows/s':>9}")
    print(f"  {'(r1) COPY CSV file -> unlogged text table, no indexes':<62} {minimal:>8.1f} {rows / minimal:>9,.0f}")
    print(
        f"  {'(r2) COPY CSV file -> typed logged table, 7 indexes':<62} {file_floor:>8.1f} {rows / file_floor:>9,.0f}"
    )
    label = f"(a)  COPY same contacts -> contacts_contact ({indexes} indexes, FKs)"
    print(f"  {label:<62} {floor:>8.1f} {rows / floor:>9,.0f}")
    label = f"(a2) COPY their {links:,} tag links -> contacts_contacttag"
    print(f"  {label:<62} {links_floor:>8.1f} {'':>9}")
    print(f"  {'(b)  import through the service, empty table':<62} {first:>8.1f} {rows / first:>9,.0f}")
    print(f"  {'(c)  import the same file again, all unchanged':<62} {second:>8.1f} {rows / second:>9,.0f}")
    print()
    print(
        f"  (b) outcome: {report.created:,} created, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.error_count:,} rejected; {contacts:,} contacts and {links:,} tag links written"
    )
    print(
        f"  (c) outcome: {again.created:,} created, {again.updated:,} updated, {again.unchanged:,} unchanged, "
        f"{again.error_count:,} rejected"
    )
    print()
    ratio = first / floor
    verdict = "within" if ratio <= 5 else "OVER"
    print(f"  ratio (b)/(a)  = {ratio:.2f}x   ({verdict} the 5x target)")
    print(f"  ratio (b)/(a+a2) = {first / (floor + links_floor):.2f}x   (against COPY of every row the import writes)")
    print(f"  ratio (b)/(r2) = {first / file_floor:.2f}x   (against the CSV-shaped table)")
    print(f"  ratio (c)/(a)  = {second / floor:.2f}x")
    ok = report.created == contacts == rows and report.error_count == 0 and again.unchanged == rows
    if not ok:
        print("  WARNING: the outcome is not the expected one (every row created, then every row unchanged)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
