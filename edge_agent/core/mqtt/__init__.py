"""MQTT pieces both sides use: topics, the client factory, MQTT v5 properties."""
