# shellcheck shell=bash
# The check scripts' common helpers (bash; sourced, not run): one line per assertion, "ok: WHAT" or
# "FAILED: WHAT", the failures counted in $failures, and one last line with the verdict.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
failures=0

pass() { echo "ok: $1"; }
failed() { echo "FAILED: $1"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: passes when COMMAND exits 0 (what it prints is shown).
check() {
  if "${@:2}"; then pass "$1"; else failed "$1"; fi
}

# sandbox_triple_fault LOG: true when this runs in the nested sandbox and LOG shows that the guest
# triple-faulted there (the emulated CPU's fault: README, "Where KVM comes from").
sandbox_triple_fault() {
  [[ ${MICROVM_SANDBOX_GUEST:-} == 1 ]] && grep -aq "triple-faulted" "$1"
}

# finish [--retry-on-triple-fault LOG]: ends the script. No failure: "all checks passed", exit 0.
# Else "---- N check(s) failed ----" and exit 1 — or, with --retry-on-triple-fault, exit 75 when
# this runs in the nested sandbox and LOG shows that the guest triple-faulted: the emulated CPU's
# fault (README, "Where KVM comes from"; QEMU -M microvm meets it there too), and exit status 75
# asks tools/sandbox for one more run. With a real /dev/kvm a triple fault fails like any other.
# shellcheck disable=SC2120 # the option is optional
finish() {
  if ((failures == 0)); then
    echo "all checks passed"
    exit 0
  fi
  echo "---- $failures check(s) failed ----"
  if [[ ${1:-} == --retry-on-triple-fault ]] && sandbox_triple_fault "$2"; then
    echo "the guest triple-faulted in the nested sandbox, a fault of the emulated CPU (exit 75):" \
      "$(grep -a -m1 "triple-faulted" "$2" | tr -d '\r')"
    exit 75
  fi
  exit 1
}
