"""Publish: MQTT publisher, the SQLite outbox, delivery, Home Assistant discovery and the wire contract."""
