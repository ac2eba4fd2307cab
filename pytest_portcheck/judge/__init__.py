"""Judging: what was found against what was declared → a verdict and the message a person reads in CI.

``evidence`` (what a verdict rests on: one view for a scan and for a run's reports), ``expectation``
(one port: state, service, TLS, auth), ``ranges`` (``only_open``), ``silence`` (what silence proves),
``verdict`` (the verdict, how vantages combine, how results read). Pure: no I/O, no pytest. This file
holds no code.
"""
