"""Validates OpenAPI documents with PyPI `openapi-spec-validator`, an implementation of the
OpenAPI 3 specification independent of the hub, so the hub's generated documents are checked
against the standard and not only against the hub's own idea of it. Reads a JSON list of
documents on stdin, prints a JSON list with "ok" or the validator's message for each.
"""
import json
import sys

from openapi_spec_validator import validate

results = []
for doc in json.load(sys.stdin):
    try:
        validate(doc)
        results.append("ok")
    except Exception as e:  # the validator's own errors carry the path and the reason
        results.append(f"{type(e).__name__}: {e}")
json.dump(results, sys.stdout)
