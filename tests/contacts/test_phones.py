from __future__ import annotations

import random

import phonenumbers
import pytest
from django.core.exceptions import ValidationError

from contacts.phones import normalize_phone


@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+86 138 1234 5678", "86-138-1234-5678", "0086 13812345678", "(138) 1234-5678"],
)
def test_mainland_mobile_numbers_normalise_to_e164(raw):
    assert normalize_phone(raw) == "+8613812345678"


def test_landline_and_foreign_numbers_go_through_phonenumbers():
    assert normalize_phone("010 6552 9988") == "+861065529988"
    assert normalize_phone("+1 650 253 0000") == "+16502530000"


@pytest.mark.parametrize("raw", ["12345", "138123456789", "10012345678", "abc", "+86 120 0000 0000"])
def test_invalid_numbers_are_rejected_with_a_validation_error(raw):
    with pytest.raises(ValidationError):
        normalize_phone(raw)


def test_empty_phone_is_required():
    with pytest.raises(ValidationError) as exc:
        normalize_phone("  ")
    assert exc.value.code == "required"


def test_cached_mobile_fast_path_agrees_with_phonenumbers_on_every_prefix():
    rng = random.Random(7)
    for prefix in range(100, 200):
        for _ in range(20):
            national = f"{prefix}{rng.randrange(10**8):08d}"
            try:
                expected_valid = phonenumbers.is_valid_number(phonenumbers.parse(national, "CN"))
            except phonenumbers.NumberParseException:
                expected_valid = False
            try:
                normalize_phone(national)
                valid = True
            except ValidationError:
                valid = False
            assert valid == expected_valid, national
