"""Bundled data, installed as the package ``odc_assets``: see twin/core/assets.py."""
