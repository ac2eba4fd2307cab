"""The typed report and its writers and readers: JSON (schema, encode, decode), nmap XML, HTML, Markdown,
SARIF, metrics, the diff of two reports, and the judged report (findings).

This file holds no code: importing one writer must not pull the others. Must not import pytest, the pipeline
or a front end (pyproject.toml's contracts).
"""
