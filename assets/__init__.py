"""Bundled data, installed as the package ``odc_assets``: see twin/assets.py."""
