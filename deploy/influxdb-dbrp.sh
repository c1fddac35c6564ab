#!/bin/bash
# Run by the influxdb:2 image once, after its initial setup
# (/docker-entrypoint-initdb.d): maps InfluxQL database "finopsia" with
# retention policy "autogen" to the bucket, so Grafana's InfluxQL queries
# (the dashboards in dashboards/json) read it. The influx CLI is already
# configured with the setup's token and org here.
set -euo pipefail
bucket_id="$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)"
influx v1 dbrp create \
    --db finopsia \
    --rp autogen \
    --bucket-id "${bucket_id}" \
    --default
