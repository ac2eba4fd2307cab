"""The scan pipeline, without pytest: what the front ends call and only present.

``scan`` (targets as given: resolve, scan, report), ``inventory`` (an inventory's scan: one engine run per
timing, confirmation of silent ``open`` ports), ``probe`` (the protocol probes a scan asks for). Must not
import pytest, sharding or a front end. This file holds no code.
"""
