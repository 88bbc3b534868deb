#!/bin/sh
# Programs lumen must refuse to compile, each with the message that says why:
#   compile_fail.sh SOURCE_ROOT COMPILER [COMPILER ARGS...]
set -u
source_root=$1
shift
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0

# refused NAME MESSAGE COMPILER...: $out/NAME.cpp must fail to compile, saying MESSAGE.
refused() {
  name=$1
  message=$2
  shift 2
  if "$@" -std=c++20 -fsyntax-only -I"$source_root/include" "$out/$name.cpp" >"$out/$name.log" 2>&1; then
    echo "FAIL: $name compiled"
    failed=1
  elif ! grep -q "$message" "$out/$name.log"; then
    echo "FAIL: $name was refused without saying: $message"
    cat "$out/$name.log"
    failed=1
  else
    echo "ok: $name"
  fi
}

# A value whose destructor may throw: it runs when the last ref goes, where an exception has
# nowhere to go. Refused for put() and for a task's result alike.
cat >"$out/throwing_destructor_put.cpp" <<'CPP'
#include <lumen/lumen.h>
struct Loud {
  ~Loud() noexcept(false) {}
};
int main() { auto r = lumen::put(Loud{}); }
CPP
cat >"$out/throwing_destructor_result.cpp" <<'CPP'
#include <lumen/lumen.h>
struct Loud {
  ~Loud() noexcept(false) {}
};
int main() { auto r = lumen::submit([] { return Loud{}; }); }
CPP
refused throwing_destructor_put "destructor that does not throw" "$@"
refused throwing_destructor_result "destructor that does not throw" "$@"
exit $failed
