"""The pytest plugin: an inventory's expectations as pytest items, one shared scan (or judged reports).

``hooks`` (the ``pytest11`` entry point: options, configure, fixtures), ``items`` (collection and the items),
``session`` (the one scan every item and xdist worker reads), ``judgemode`` (items judged from reports),
``summary`` (what the controller prints and writes). Only pytest's front end; must not import the
``portcheck`` command (``cli``). This file holds no code.
"""
