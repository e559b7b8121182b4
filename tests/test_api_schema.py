"""The API's answers and its OpenAPI schema agree: what the schema fuzz (tests/test_schema_fuzz.py) found.

The error responses of every operation (scrm.openapi), read-only fields that may be blank or null,
wall-clock times, the CSV of the personal-data export; and three known defects whose fixes belong in
files this change could not touch, as strict xfails that turn red once they are fixed (then drop the
marker, and the matching allowance in tests/test_schema_fuzz.py where there is one)."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings, spectacular_settings
from rest_framework.test import APIClient

from contacts.models import ExportJob
from scrm.openapi import WALL_CLOCK_TIME_PATTERN, error_statuses, postprocess_error_responses

ERROR = {"$ref": "#/components/schemas/ApiError"}


def _schema(*, with_hook: bool) -> dict:
    hooks = [f"{hook.__module__}.{hook.__qualname__}" for hook in spectacular_settings.POSTPROCESSING_HOOKS]
    if with_hook and postprocess_error_responses not in spectacular_settings.POSTPROCESSING_HOOKS:
        hooks.append("scrm.openapi.postprocess_error_responses")
    with patched_settings({"POSTPROCESSING_HOOKS": hooks}):
        return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture(scope="module")
def schema():
    return _schema(with_hook=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, operation


# --- The hook ---------------------------------------------------------------------------------------


def test_every_operation_may_be_refused_and_throttled(schema):
    for method, path, operation in _operations(schema):
        for status in ("401", "403", "429"):
            assert status in operation["responses"], f"{method.upper()} {path} does not document {status}"


@pytest.mark.parametrize(
    ("method", "operation", "expected"),
    [
        ("get", {}, ["401", "403", "429"]),
        ("get", {"parameters": [{"in": "query", "name": "search"}]}, ["400", "401", "403", "429"]),
        ("get", {"parameters": [{"in": "query", "name": "page"}]}, ["400", "401", "403", "404", "429"]),
        ("get", {"parameters": [{"in": "path", "name": "id"}]}, ["401", "403", "404", "429"]),
        ("get", {"parameters": [{"in": "query", "name": "format"}]}, ["400", "401", "403", "404", "429"]),
        ("post", {}, ["400", "401", "403", "409", "429"]),
        ("patch", {"requestBody": {}}, ["400", "401", "403", "409", "415", "429"]),
        ("delete", {"parameters": [{"in": "path", "name": "id"}]}, ["400", "401", "403", "404", "409", "429"]),
    ],
)
def test_error_statuses_follow_what_the_operation_takes(method, operation, expected):
    assert error_statuses(method, operation) == expected


def test_errors_have_the_one_error_body_and_own_descriptions_are_kept():
    result = {
        "paths": {
            "/things/{id}/": {
                "parameters": [{"in": "path", "name": "id"}],
                "get": {
                    "parameters": [{"in": "path", "name": "id"}],
                    "responses": {"200": {"description": ""}, "404": {"description": "Not ready"}},
                },
            }
        }
    }
    responses = postprocess_error_responses(result)["paths"]["/things/{id}/"]["get"]["responses"]
    assert responses["404"] == {"description": "Not ready", "content": {"application/json": {"schema": ERROR}}}
    assert responses["401"]["content"] == {"application/json": {"schema": ERROR}}
    assert responses["200"] == {"description": ""}
    assert {"ApiError", "ApiErrorItem"} <= set(result["components"]["schemas"])


def test_the_error_component_is_the_exception_handlers_body(schema, manager_api):
    body = manager_api.get("/api/v1/contacts/999999/").json()
    component = schema["components"]["schemas"]["ApiError"]
    assert set(body) == set(component["required"])
    assert set(body["errors"][0]) == set(schema["components"]["schemas"]["ApiErrorItem"]["required"])


def test_a_report_documents_the_404_of_an_unknown_format(schema, manager_api):
    # DRF answers a ?format= it has no renderer for with 404 (tests/analytics/test_exports.py); the reports
    # documented only 400, 401 and 403 (found by the schema fuzz).
    assert "404" in schema["paths"]["/api/v1/analytics/kpis/"]["get"]["responses"]
    response = manager_api.get("/api/v1/analytics/kpis/", {"format": "xlsx"})
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"


# --- Values the API returns ---------------------------------------------------------------------------


def _property(schema: dict, component: str, name: str) -> dict:
    return schema["components"]["schemas"][component]["properties"][name]


def _blank_allowed(prop: dict) -> bool:
    return any(
        option.get("$ref", "").endswith("/BlankEnum") or option.get("maxLength") == 0
        for option in prop.get("oneOf", [])
    )


@pytest.mark.parametrize(
    ("component", "name"),
    [("Delivery", "reason"), ("FollowRelationship", "ended_by"), ("LiveCode", "qr_code")],
)
def test_read_only_fields_that_may_be_blank_say_so(schema, component, name):
    # "" is what these return until set (no skip reason, an active follow, no QR code yet).
    assert _blank_allowed(_property(schema, component, name))


@pytest.mark.parametrize(
    ("component", "name"),
    [
        ("Segment", "created_by"),
        ("MessageTemplate", "created_by"),
        ("Broadcast", "approved_by"),
        ("FrequencyPolicy", "updated_by"),
        ("Automation", "created_by"),
        ("LiveCode", "created_by"),
        ("SyncRun", "started_by"),
    ],
)
def test_read_only_fields_that_may_be_null_say_so(schema, component, name):
    # null until set, or once the user's account is deleted (SET_NULL).
    assert _property(schema, component, name).get("nullable") is True


def test_wall_clock_times_are_described_by_a_pattern_without_an_offset(schema):
    prop = _property(schema, "FrequencyPolicy", "quiet_start")
    assert "format" not in prop  # JSON Schema's "time" requires a UTC offset ("22:00:00+08:00")
    assert prop["pattern"] == WALL_CLOCK_TIME_PATTERN
    for value in ("22:00", "22:00:00", "08:30:00.5"):
        assert re.match(WALL_CLOCK_TIME_PATTERN, value), value
    for value in ("24:00", "22:00:00+08:00", "9:00"):
        assert not re.match(WALL_CLOCK_TIME_PATTERN, value), value


def test_the_personal_data_export_documents_its_csv(schema):
    # ?as=csv answered text/csv, which the schema did not list (found by the schema fuzz).
    content = schema["paths"]["/api/v1/contacts/{id}/personal-data/"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"}


# --- Known defects: the fixes belong in scrm/settings.py, scrm/urls.py and contacts/api/views.py -------


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="SPECTACULAR_SETTINGS['POSTPROCESSING_HOOKS'] (scrm/settings.py) does not list "
    "scrm.openapi.postprocess_error_responses yet: the served schema documents no 4xx. Once it does, "
    "drop this marker and the hook's addition in tests/test_schema_fuzz.py (_load_schema).",
)
def test_the_served_schema_documents_the_error_responses(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = response.json()["paths"]
    assert "401" in paths["/api/v1/contacts/"]["get"]["responses"]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="A path under /api/ that matches no URL pattern (an id that is not an integer) gets Django's "
    "HTML 404 page: scrm/urls.py needs a handler404 answering /api/ paths in the JSON error shape. Once it "
    "does, drop this marker and _known_defects in tests/test_schema_fuzz.py.",
)
def test_an_api_path_matching_no_route_is_a_json_404(manager_api):
    response = manager_api.get("/api/v1/automation-runs/0.5/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["type"] == "not_found"


@pytest.mark.xfail(
    strict=True,
    raises=FileNotFoundError,  # the test client raises what the view raised
    reason="A finished export whose file is gone from the storage (deleted by hand, lost with a volume, "
    "another node's disk) answers 500 on download: contacts/api/views.py ExportJobViewSet.download opens "
    "job.file without checking that it exists. It should answer 404 like an expired export.",
)
def test_downloading_an_export_whose_file_is_gone_is_a_404(operator, operator_api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    job = ExportJob.objects.create(created_by=operator, status=ExportJob.Status.DONE, file="exports/gone.csv")
    response = operator_api.get(f"/api/v1/exports/{job.pk}/download/")
    assert response.status_code == 404
