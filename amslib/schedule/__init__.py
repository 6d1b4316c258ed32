"""Snapshot schedules: pure slot, due-ness and expiry math (slots) for `ams snapshot schedule`."""
