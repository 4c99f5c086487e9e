#!/usr/bin/env bash
# Sets erd up and starts it on the embedded default: a SQLite file in var/,
# the bundled goodbooks-10k demo catalog, the default encoder.  Prints a
# ready-to-paste curl, then serves in the foreground until Ctrl-C.
#
# usage: deploy/run-demo.sh [HOST:PORT]   (default 127.0.0.1:8080)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
listen=${1:-${ERD_LISTEN:-127.0.0.1:8080}}

deploy/setup.sh build

mkdir -p var
db=var/demo.db
if [ ! -f "$db" ] || [ deploy/demo/books.jsonl -nt "$db" ]; then
    build/erd import --db "$db" --catalog books deploy/demo/books.jsonl
    build/erd build --db "$db" --catalog books
fi

cat <<EOT

erd is starting on http://$listen with the demo catalog "books".  Try:

  curl -s http://$listen/v1/resolve -H 'Content-Type: application/json' \\
    -d '{"catalog":"books","hypotheses":[{"text":"harry potter and the sorcerers stone","score":-1200},{"text":"harry potter in the sorcerer stone","score":-1500}],"k":3}'

EOT
exec build/erd serve --db "$db" --listen "$listen"
