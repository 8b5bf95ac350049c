"""The wire: codec, field and command catalogs (docs/protocol.md)."""
