#!/usr/bin/env bash
# A private CA and a broker certificate for the compose stack's Mosquitto (or a test):
# ca.crt, ca.key, server.crt and server.key in OUT_DIR, the server certificate valid for every
# host name and IP given (default: localhost, mosquitto, 127.0.0.1). An existing CA is reused,
# so rerunning only renews the server certificate. Give the devices ca.crt (never ca.key).
#   deploy/compose/gen-certs.sh deploy/compose/secrets/certs broker.example.net localhost mosquitto
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  echo "usage: $0 OUT_DIR [HOST_OR_IP ...]" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "gen-certs: openssl not found: apt-get install openssl" >&2; exit 1; }
out=$1
shift
hosts=("$@")
[ ${#hosts[@]} -gt 0 ] || hosts=(localhost mosquitto 127.0.0.1)
days=${DAYS:-825}
mkdir -p "$out"

san=""
for host in "${hosts[@]}"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san+="${san:+,}IP:$host"; else san+="${san:+,}DNS:$host"; fi
done

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [ ! -f "$out/ca.crt" ]; then
  echo "gen-certs: new CA $out/ca.crt"
  openssl req -x509 "${ec[@]}" -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" \
    -subj "/CN=Osprey MQTT CA" 2>/dev/null
  chmod 600 "$out/ca.key"
fi
echo "gen-certs: server certificate $out/server.crt for $san"
openssl req -new "${ec[@]}" -keyout "$out/server.key" -out "$out/server.csr" \
  -subj "/CN=${hosts[0]}" 2>/dev/null
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -CAcreateserial -out "$out/server.crt" -days "$days" \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") 2>/dev/null
rm -f "$out/server.csr"
# The broker in the container runs as its own user: it must read the key.
chmod 644 "$out/server.key"
