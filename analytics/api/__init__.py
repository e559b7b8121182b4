"""The analytics REST API (/api/v1/analytics/): the reports of ``analytics.metrics`` as JSON, and each
table as CSV with ``?format=csv``."""
