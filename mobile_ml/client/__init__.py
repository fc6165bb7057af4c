"""The reference device client: what the Android updater implements, in Python (``docs/update-protocol.md``)."""
