"""Simplified Chinese number formats: Django's, with the thousands separator that Chinese business
software and the reports use (12,345 and ¥1,500.00, as on the English pages) instead of none."""

from django.conf.locale.zh_Hans.formats import *  # noqa: F403

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
