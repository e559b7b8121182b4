"""Demo campaigns content for ``seed_demo``: the script and material library (话术/素材库), a few saved
segments, the SOPs brands start with (welcome, order thank-you, repurchase reminder, birthday,
win-back), one broadcast waiting for approval and one draft. Idempotent by name."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from campaigns.automations import automation_create
from campaigns.models import Automation, Broadcast, MessageTemplate, Segment
from campaigns.segments import segment_rules_validate

TEMPLATES = (
    # name, category, kind, body, is_service
    (
        "新客欢迎语",
        "欢迎语",
        "message",
        "{name}您好，我是您的专属顾问{owner}～新人体验装已为您预留，回复“1”即可领取哦。",
        False,
    ),
    ("下单感谢", "服务通知", "message", "{name}，感谢您的支持！您的订单已收到，有任何使用问题随时找{owner}。", True),
    (
        "复购提醒",
        "复购",
        "message",
        "{name}，您上次购买的{product}差不多该用完啦，老客专享券{coupon}已放入账户，3天内有效。",
        False,
    ),
    (
        "生日祝福",
        "节日关怀",
        "message",
        "{name}，生日快乐！🎂 {owner}为您准备了一份生日礼：{coupon}，本月内可用。",
        False,
    ),
    (
        "沉睡唤醒",
        "召回",
        "message",
        "{name}，好久不见～最近上新了几款好物，老朋友回来看看？专属回归券：{coupon}",
        False,
    ),
    ("双十二预热", "大促", "message", "{name}，双十二会员日提前购开启！前100名下单送精华小样，券码{coupon}。", False),
    ("社群早安", "社群运营", "script", "各位宝子早上好☀️ 今天的护肤小课堂聊聊换季敏感肌怎么护理，10点群里见～", False),
    (
        "异议处理：价格",
        "销售话术",
        "script",
        "理解您的顾虑～这款是按次算成本的：一瓶能用两个月，折合每天不到5块，而且不满意7天无理由。",
        False,
    ),
)

SEGMENTS = (
    (
        "高价值复购客户",
        "累计消费≥1000元且近90天有购买",
        {
            "op": "and",
            "rules": [
                {"field": "total_spent", "operator": "gte", "value": "1000"},
                {"field": "days_since_last_purchase", "operator": "lte", "value": 90},
            ],
        },
    ),
    (
        "沉睡待唤醒",
        "买过但超过180天未复购",
        {
            "op": "and",
            "rules": [
                {"field": "purchase_count", "operator": "gte", "value": 1},
                {"field": "days_since_last_purchase", "operator": "gte", "value": 180},
            ],
        },
    ),
    (
        "有意向未成交",
        "互动过但还没下单",
        {
            "op": "and",
            "rules": [{"field": "stage", "operator": "in", "value": ["engaged"]}],
        },
    ),
    (
        "已授权的全部客户",
        "同意接收营销消息、未退订",
        {
            "op": "and",
            "rules": [{"field": "consent", "operator": "is_true"}],
        },
    ),
)


def campaigns_demo_seed(*, manager, operator) -> dict[str, int]:
    """Create the demo library, segments, SOPs and two broadcasts (skipping what exists by name)."""
    with transaction.atomic():
        templates = {}
        for name, category, kind, body, is_service in TEMPLATES:
            templates[name], _ = MessageTemplate.objects.get_or_create(
                name=name,
                defaults={
                    "category": category,
                    "kind": kind,
                    "body": body,
                    "is_service": is_service,
                    "created_by": manager,
                },
            )
        segments = {}
        for name, description, rules in SEGMENTS:
            segments[name], _ = Segment.objects.get_or_create(
                name=name,
                defaults={"description": description, "rules": segment_rules_validate(rules), "created_by": manager},
            )
        now = timezone.now()
        automations = (
            ("新客欢迎 SOP", Automation.Trigger.CONTACT_CREATED, {}, 5, "send_template", "新客欢迎语", {}),
            ("下单感谢", Automation.Trigger.PURCHASE_MADE, {}, 0, "send_template", "下单感谢", {}),
            (
                "复购提醒（按商品复购周期）",
                Automation.Trigger.REPURCHASE_DUE,
                {},
                0,
                "send_template",
                "复购提醒",
                {"coupon": "VIP20"},
            ),
            ("生日祝福", Automation.Trigger.BIRTHDAY, {}, 0, "send_template", "生日祝福", {"coupon": "BDAY50"}),
            ("30天未互动→回访任务", Automation.Trigger.INACTIVE, {"days": 30}, 0, "create_task", None, {}),
        )
        for name, trigger, config, delay, action, template_name, variables in automations:
            if Automation.objects.filter(name=name).exists():
                continue
            automation_create(
                created_by=manager,
                name=name,
                trigger=trigger,
                trigger_config=config,
                delay_minutes=delay,
                action=action,
                template=templates.get(template_name) if template_name else None,
                variables=variables,
                task_title="客户30天未互动，请电话或企微回访" if action == "create_task" else "",
                is_active=True,
            )
        if not Broadcast.objects.exists():
            Broadcast.objects.create(
                name="双十二会员日预热",
                segment=segments["高价值复购客户"],
                template=templates["双十二预热"],
                variables={"coupon": "DD12-VIP"},
                status=Broadcast.Status.PENDING_APPROVAL,
                scheduled_at=now + dt.timedelta(days=1),
                created_by=operator,
            )
            Broadcast.objects.create(
                name="沉睡客户召回（草稿）",
                segment=segments["沉睡待唤醒"],
                template=templates["沉睡唤醒"],
                variables={"coupon": "BACK30"},
                created_by=manager,
            )
    return {
        "templates": MessageTemplate.objects.count(),
        "segments": Segment.objects.count(),
        "automations": Automation.objects.count(),
        "broadcasts": Broadcast.objects.count(),
    }
