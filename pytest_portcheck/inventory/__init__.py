"""The inventory: what must be open, closed or filtered where, as a newcomer reads it in the tree.

``model`` (the frozen hosts and expectations), ``load`` (the YAML reader: ``yamlreader`` for values,
``entries`` for the port lists), ``snapshot`` (an inventory written from a scan) and ``sources`` (exposures
read from Compose, Kubernetes and Terraform files). Must not import pytest, the report, judging or the
pipeline. This file holds no code: importing ``model`` or ``snapshot`` loads no YAML.
"""
