"""The demo staff: a manager, five operators sharing the contacts, an admin and an integrator (API token
only). Their logins are public (printed by ``seed_demo``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from scrm import roles
from wecom.models import StaffAccount

User = get_user_model()


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
        if member.role in (roles.MANAGER, roles.OPERATOR):
            # Their WeCom accounts (the simulated corp of `make run` knows them by these userids).
            StaffAccount.objects.get_or_create(
                userid=member.username, defaults={"user": user, "name": member.first_name}
            )
        users[member.username] = user
    return users


DEMO_TOKEN_NAME = "demo integrator"


def demo_integrator_token(user) -> str:
    """A fresh key for the demo integrator (keys are stored hashed, so an earlier one cannot be shown
    again): the previous demo token is revoked."""
    from scrm.authentication import api_token_create, api_token_revoke
    from scrm.models import ApiToken

    for old in ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME, revoked_at__isnull=True):
        api_token_revoke(token=old)
    return api_token_create(user=user, name=DEMO_TOKEN_NAME, scopes=ApiToken.Scope.values)[1]
