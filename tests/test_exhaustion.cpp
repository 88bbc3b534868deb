// Stack overflows and exhausted process limits (memory mappings, address space), each in a
// child process (exhaustion_child) so that the limit or the crash stays there.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct ChildResult {
  std::string output;  // stdout and stderr
  bool exited = false;
  int exit_code = -1;
};

ChildResult run_child(const std::string& scenario) {
  const char* path = std::getenv("LUMEN_EXHAUSTION_CHILD");
  REQUIRE(path != nullptr);
  std::string command = std::string(path) + " " + scenario + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  ChildResult r;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  int status = ::pclose(pipe);
  r.exited = WIFEXITED(status);
  if (r.exited) r.exit_code = WEXITSTATUS(status);
  return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

// A frame larger than the stack meets the guard below it (stack probes walk it page by page)
// and the process stops with a message naming the task and the stack size, never silently.
TEST_CASE("a task that overflows its stack stops the process with a message naming it") {
  ChildResult r = run_child("overflow");
  INFO(r.output);
  CHECK_FALSE((r.exited && r.exit_code == 0));
  CHECK(contains(r.output, "lumen: stack overflow in task 'deep'"));
  CHECK(contains(r.output, "65536 bytes"));
  CHECK_FALSE(contains(r.output, "survived"));
}

// Every task runs on a fiber of the configured size: the same task overflows the same way
// before and after other tasks parked (it never runs on the thread's larger stack).
TEST_CASE("the stack a task gets does not depend on what ran before") {
  ChildResult r = run_child("overflow-after-parks");
  INFO(r.output);
  CHECK_FALSE((r.exited && r.exit_code == 0));
  CHECK(contains(r.output, "lumen: stack overflow in task 'deep after parks'"));
}

#if !defined(LUMEN_TEST_SANITIZED)
// With vm.max_map_count reached, a task that has to park cannot get a stack (or its guard):
// its get fails with resource_error naming the limit, instead of running without a guard or
// a bare std::bad_alloc. (Sanitizers keep mappings of their own, so plain builds only.)
TEST_CASE("no mapping left for a fiber stack or its guard: resource_error") {
  for (const char* scenario : {"map-count", "map-count-one-spare"}) {
    ChildResult r = run_child(scenario);
    INFO(scenario << ": " << r.output);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "resource_error: lumen: "));
    CHECK(contains(r.output, "vm.max_map_count"));
  }
}

// With vm.max_map_count reached, the object table cannot map a new segment (nor the arrays
// kept beside it; each spare mapping moves the failure one mapping on): put throws
// std::bad_alloc, no object loses its value, and the table grows again once mappings are free.
TEST_CASE("no mapping left for the object table to grow: bad_alloc, no object lost") {
  for (const char* scenario : {"table-growth-0", "table-growth-1", "table-growth-2", "table-growth-3"}) {
    ChildResult r = run_child(scenario);
    INFO(scenario << ": " << r.output);
    CHECK(r.exited);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, "bad_alloc after "));
    CHECK(contains(r.output, "then "));
  }
}

// Worker threads that cannot start (address space limit) give a catchable resource_error, the
// threads that did start are stopped, and a later Runtime works.
TEST_CASE("worker threads that cannot start: resource_error, nothing left behind") {
  ChildResult r = run_child("threads");
  INFO(r.output);
  CHECK(r.exited);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.output, "resource_error: lumen: could not start worker thread"));
  CHECK(contains(r.output, "then 42"));
}
#endif
