// Actor checkpoints kept in a file: a process killed mid-run (SIGKILL) leaves a file from which
// a new actor starts where the last checkpoint was; bad files and bad options are reported.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

extern char** environ;

namespace {

struct Counter {
  long count = 0;
  long add(long n) { return count += n; }
  long value() const { return count; }
  std::string checkpoint() const { return std::to_string(count); }
  void restore(const std::string& bytes) { count = std::stol(bytes); }
};

struct NotSerialized {
  int v = 0;
  int checkpoint() const { return v; }
  void restore(int x) { v = x; }
};

std::string temp_path(const char* name) {
  std::string dir = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
  return dir + "/lumen-test-" + std::to_string(::getpid()) + "-" + name;
}

}  // namespace

TEST_CASE("a process killed mid-run leaves a checkpoint file that a new actor starts from") {
  const char* child = std::getenv("LUMEN_CHECKPOINT_CHILD");
  REQUIRE_MESSAGE(child != nullptr, "LUMEN_CHECKPOINT_CHILD names the child program");
  const std::string file = temp_path("counter.ckpt");
  std::remove(file.c_str());

  int out[2];
  REQUIRE(::pipe(out) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  char* argv[] = {const_cast<char*>(child), const_cast<char*>(file.c_str()), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, child, &actions, nullptr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);

  // Let it count to 200, then kill it without warning.
  FILE* lines = ::fdopen(out[0], "r");
  REQUIRE(lines != nullptr);
  long told = 0;
  char line[64];
  while (told < 200 && std::fgets(line, sizeof line, lines) != nullptr) told = std::atol(line);
  REQUIRE(told == 200);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  std::fclose(lines);

  // The child told 200 after the call resolved; its checkpoint follows the call, so the file
  // holds 199 at least, and no more than the calls it made before the kill.
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto counter = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_file = file});
  const long restored = lumen::get(counter.call(&Counter::value));
  MESSAGE("told 200 before the kill; restored " << restored);
  CHECK(restored >= 199);
  CHECK(lumen::get(counter.call(&Counter::add, 1)) == restored + 1);
  counter = {};
  std::remove(file.c_str());
  std::remove((file + ".tmp").c_str());
}

TEST_CASE("each checkpoint replaces the file; a new actor starts from the last one") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  const std::string file = temp_path("interval.ckpt");
  std::remove(file.c_str());
  {
    auto counter = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_interval = 3, .checkpoint_file = file});
    for (int i = 0; i < 10; ++i) lumen::get(counter.call(&Counter::add, 1));
    lumen::get(counter.call(&Counter::value));  // one more success: the 11th call, no checkpoint
  }
  std::ifstream in(file);
  std::string saved;
  in >> saved;
  CHECK(saved == "9");  // after calls 3, 6 and 9
  auto again = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_file = file});
  CHECK(lumen::get(again.call(&Counter::value)) == 9);
  std::remove(file.c_str());
}

TEST_CASE("bad checkpoint files and options are reported") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  // A checkpoint that is not the type's serialized bytes cannot go to a file.
  CHECK_THROWS_AS(lumen::actor<NotSerialized>(lumen::ActorOptions{.checkpoint_file = temp_path("x")}),
                  lumen::usage_error);

  // A file that does not parse: restore() throws, and the actor ends saying why.
  const std::string garbage = temp_path("garbage.ckpt");
  std::ofstream(garbage) << "not a number";
  auto broken = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_file = garbage});
  CHECK_THROWS_AS(lumen::get(broken.call(&Counter::value)), lumen::actor_died);
  std::remove(garbage.c_str());

  // A file that cannot be read (a directory): actor_died naming it.
  const std::string dir = temp_path("dir.ckpt");
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  auto unreadable = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_file = dir});
  try {
    lumen::get(unreadable.call(&Counter::value));
    FAIL("the call should fail");
  } catch (const lumen::actor_died& e) {
    CHECK(std::string(e.what()).find(dir) != std::string::npos);
  }
  ::rmdir(dir.c_str());

  // A folder that does not exist: checkpoints cannot be written, and the actor goes on.
  auto homeless = lumen::actor<Counter>(lumen::ActorOptions{.checkpoint_file = temp_path("no/such/dir/file")});
  for (int i = 0; i < 5; ++i) lumen::get(homeless.call(&Counter::add, 1));
  CHECK(lumen::get(homeless.call(&Counter::value)) == 5);
}
