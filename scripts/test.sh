#!/usr/bin/env bash
# The test command: everything a fresh machine needs, then the suite on SQLite and PostgreSQL.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export FENGCHAO_ENV=test

# Debian's Chromium (browser tests) and Noto CJK fonts (posters, screenshots); each installed
# when missing (Playwright's own download is not used).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the browser and poster tests…"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || echo "could not install ${missing[*]}"
  fi
fi

PG_URL="${FENGCHAO_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
pg_ready() { $BIN/python - "$PG_URL" <<'PY'
import sys
import sqlalchemy as sa
try:
    with sa.create_engine(sys.argv[1]).connect() as c:
        c.exec_driver_sql("select 1")
except Exception as exc:
    print(f"PostgreSQL unreachable: {exc.__class__.__name__}", file=sys.stderr)
    sys.exit(1)
PY
}
if ! pg_ready && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do pg_ready 2>/dev/null && break; sleep 1; done
fi

status=0
echo "== lint and types"
$BIN/ruff check src tests benchmarks || status=1
$BIN/ruff format --check src tests benchmarks || status=1
$BIN/mypy || status=1

run_pytest() {
  $BIN/python -m pytest "$@"
  local rc=$?
  # Exit 5 means no test was collected; that is a failure of the suite, not a pass.
  [ $rc -eq 5 ] && echo "pytest collected no tests" && return 1
  return $rc
}

# The two halves run side by side, a core each: one after the other they took over 30 minutes
# on a 2-core machine. The PostgreSQL half's output is shown when both are done.
pg_log="$(mktemp)"
pg_pid=""
if pg_ready; then
  (FENGCHAO_TEST_DATABASE="$PG_URL" run_pytest -q -m "not e2e and not vision" >"$pg_log" 2>&1
   echo $? >"$pg_log.rc") &
  pg_pid=$!
fi

echo "== tests on SQLite"
FENGCHAO_TEST_DATABASE=sqlite run_pytest -q || status=1

echo "== tests on PostgreSQL"
if [ -n "$pg_pid" ]; then
  wait "$pg_pid"
  cat "$pg_log"
  [ "$(cat "$pg_log.rc" 2>/dev/null)" = 0 ] || status=1
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is required in CI and is unreachable at $PG_URL"; status=1
else
  echo "PostgreSQL unreachable at $PG_URL: skipped (CI fails here)"
fi
rm -f "$pg_log" "$pg_log.rc"
exit $status
