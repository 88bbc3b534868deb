// Checks shared by the tests of Ray's API: the message of the exception a call throws, and
// what a call wrote to lumen's log (standard error).
#pragma once

#include <doctest/doctest.h>
#include <ray/api.h>
#include <unistd.h>

#include <cstdio>
#include <string>

// The msg_ of the E that call() throws; the check fails when it throws nothing.
template <class E = ray::internal::RayException, class F>
std::string message_of(F&& call) {
  try {
    call();
  } catch (const E& e) {
    return e.msg_;
  }
  FAIL_CHECK("no exception was thrown");
  return {};
}

// What call() wrote to standard error, which is captured meanwhile.
template <class F>
std::string logged_by(F&& call) {
  std::fflush(stderr);
  FILE* file = std::tmpfile();
  REQUIRE(file != nullptr);
  int saved = ::dup(2);
  ::dup2(::fileno(file), 2);
  call();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string text;
  std::rewind(file);
  for (int c; (c = std::fgetc(file)) != EOF;) text += static_cast<char>(c);
  std::fclose(file);
  return text;
}
