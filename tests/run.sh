#!/usr/bin/env bash
# run.sh: the test runner behind `make test`: C unit tests and the integration suite on the
# ASan+UBSan build, then one summary line "N passed, N failed" over both (what CI reads).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
B=build-san
make -s SANITIZE=address,undefined all "$B/unit-tests" || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
unit_out="$("$B/unit-tests" 2>&1)"
unit_rc=$?
echo "$unit_out" | grep -vE ' (info|warn|debug): ' || true
read -r unit_passed unit_failed <<<"$(echo "$unit_out" | awk '/^[0-9]+ passed, [0-9]+ failed$/ {print $1, $3}' | tail -1)"
unit_passed=${unit_passed:-0}
unit_failed=${unit_failed:-1}
if [ "$unit_rc" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then unit_failed=1; fi
if echo "$unit_out" | grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer'; then unit_failed=$((unit_failed + 1)); fi

junit="$B/junit.xml"
rm -f "$junit"
BIN_DIR="$PWD/$B" /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$junit" tests/integration "$@"
py_rc=$?
read -r it_passed it_failed <<<"$(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f)
PY
)"
if [ "$py_rc" -ne 0 ] && [ "$it_failed" -eq 0 ]; then it_failed=1; fi

echo "unit: $unit_passed passed, $unit_failed failed; integration: $it_passed passed, $it_failed failed"
failed=$((unit_failed + it_failed))
echo "$((unit_passed + it_passed)) passed, $failed failed"
[ "$failed" -eq 0 ]
