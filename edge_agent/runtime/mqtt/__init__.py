"""MQTT on the edge: payloads, the publisher, the embedded demo broker."""
