#!/bin/sh
# The cloud worker container's entry point. Each container takes its host name as worker id
# unless OSPREY_WORKER_ID is set: replicas must not share an MQTT client id (the broker keeps
# only one connection per id). Extra arguments go to `cloud-fallback run`.
set -eu
exec cloud-fallback run --config "${OSPREY_CLOUD_CONFIG:-/etc/osprey/cloud.yaml}" \
    --worker-id "${OSPREY_WORKER_ID:-$(hostname)}" "$@"
