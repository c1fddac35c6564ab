#!/usr/bin/env bash
# Type-checks every dashboard in dashboards/json against Grafana's dashboard
# schema: each JSON is wrapped as `const d: Dashboard = <json>` and compiled
# with `tsc --strict` (wrong types, missing required fields and misspelled
# keys fail; queries are checked by tests/influx.rs against a real influxd).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
rm -rf build && mkdir build
for f in ../json/*.json; do
    name="$(basename "$f" .json)"
    {
        echo 'import type { Dashboard } from "@grafana/schema";'
        printf 'const d: Dashboard = '
        cat "$f"
        echo ';'
        echo 'export default d;'
    } > "build/$name.ts"
done
node_modules/.bin/tsc -p tsconfig.json
echo "dashboards: $(ls build/*.ts | wc -l) type-checked against @grafana/schema $(node -p 'require("@grafana/schema/package.json").version')"
