"""The shape of the codebase, checked: dependencies point one way and modules stay readable.
See docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("contacts", "communities", "campaigns", "analytics", "wecom", "demo")
# Pure maths may be long; everything else splits along its sections before it passes this.
MAX_LINES = 600
LONG_ALLOWED = {"analytics/clv.py"}


def _modules(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_scrm_shared_pieces_import_no_app_code():
    for path in _modules("scrm"):
        if path.name in ("urls.py", "api_urls.py"):  # the URL confs wire the apps in
            continue
        offending = {name for name in _imported(path) if name.split(".")[0] in APPS}
        assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_no_app_imports_another_apps_views_or_demo_data():
    for app in APPS:
        for path in _modules(app):
            for name in _imported(path):
                parts = name.split(".")
                if parts[0] in APPS and parts[0] != app and len(parts) > 1:
                    assert parts[1] != "views", f"{path.relative_to(ROOT)} imports {name}"
                    assert parts[0] != "demo", f"{path.relative_to(ROOT)} imports demo data ({name})"


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in _modules(*APPS, "scrm")
    }
    over = {name: n for name, n in long.items() if n > MAX_LINES and name not in LONG_ALLOWED}
    assert not over, f"split these along their sections: {over}"
