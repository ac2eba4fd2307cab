"""pytest hooks (filled in by the plugin work)."""
