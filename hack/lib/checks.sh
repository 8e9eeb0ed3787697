# Sourced by the integration and e2e suites: assertions that print one line
# each ("ok   NAME" or "FAIL NAME" with the difference) and count, plus
# helpers the suites share.

PASSED=0
FAILED=0

# check NAME EXPECTED ACTUAL
check() {
  if [ "$2" == "$3" ]; then
    PASSED=$((PASSED + 1))
    echo "ok   $1"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    diff <(echo "$2") <(echo "$3") | sed 's/^/     /'
  fi
}

# contains NAME NEEDLE ACTUAL
contains() {
  if grep -qF -- "$2" <<<"$3"; then
    PASSED=$((PASSED + 1))
    echo "ok   $1"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $1: no \"$2\" in:"
    sed 's/^/     /' <<<"$3"
  fi
}

# lacks NAME NEEDLE ACTUAL
lacks() {
  if grep -qF -- "$2" <<<"$3"; then
    FAILED=$((FAILED + 1))
    echo "FAIL $1: unexpected \"$2\" in:"
    grep -F -- "$2" <<<"$3" | head -20 | sed 's/^/     /'
  else
    PASSED=$((PASSED + 1))
    echo "ok   $1"
  fi
}

# Prints a TCP port free on 127.0.0.1 at the time of the call.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# figure NAME VALUE UNIT: a measured figure on a line of its own (DESIGN §7).
# FIGURE_PREFIX, when set, replaces the first component of NAME (the demo
# prints the e2e library's figures as demo.*).
figure() {
  local name=$1
  [ -n "${FIGURE_PREFIX:-}" ] && name="$FIGURE_PREFIX.${name#*.}"
  echo "figure $name $2 $3"
}

# Seconds since the epoch, with milliseconds; elapsed START prints the
# seconds since START with two decimals.
now() { date +%s.%N | cut -c1-14; }
elapsed() { python3 -c "print(f'{$(now) - $1:.2f}')"; }

# Replaces ages in kubectl's tables with AGE and runs of spaces with two.
ages() { sed -E 's/  +/  /g; s/ ([0-9]+[smhdy])+  / AGE  /g'; }

# checks_report SUITE: prints the suite's counts and, when KOLE_TEST_COUNTS
# names a file, appends "SUITE PASSED FAILED" to it for the summary `make
# test` prints last. Returns non-zero if a check failed.
checks_report() {
  echo "$1: $PASSED passed, $FAILED failed"
  [ -n "${KOLE_TEST_COUNTS:-}" ] && echo "$1 $PASSED $FAILED" >>"$KOLE_TEST_COUNTS"
  [ "$FAILED" -eq 0 ]
}
