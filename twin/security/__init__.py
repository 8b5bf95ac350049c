"""Keys, roles and the check of every connection: CURVE with a registry of admitted keys."""
