cd "${FIXTURE_DIR:?a folder made by: fixture DIR 1000000 1}"
for i in 1 2 3 4 5; do
  /usr/bin/time -f "full %e s %U u %M KB" ${AUDIT_BIN:-target/release/audit} runs/fixture --reports-root "$FIXTURE_DIR/rep" -q 2>&1 >/dev/null | tail -1
  /usr/bin/time -f "nowhatif %e s %U u %M KB" ${AUDIT_BIN:-target/release/audit} runs/fixture --reports-root "$FIXTURE_DIR/rep" -q --grid-step 0 2>&1 >/dev/null | tail -1
done
