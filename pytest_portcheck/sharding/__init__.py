"""Sharding: one inventory scanned in shares, from several vantages, and judged from the reports.

``plan`` (the inventory's units, their digest and the K/N split), ``scan`` (one share's scan), ``report`` (the
shard report, version 2, written and read), ``union`` (the reports of one run as the judge's evidence) and
``vantages`` (one vantage's evidence within the run). Must not import pytest or a front end. This file holds
no code.
"""
