/// @file
/// The exceptions of Ray's C++ API, with Ray's names and fields: every one derives from
/// ray::internal::RayException, a std::exception whose message is the public `msg_`.
///
/// @code
///   try {
///     ray::Get(ray::Task(Divide).Remote(1, 0));
///   } catch (const ray::internal::RayTaskException& e) {
///     // e.msg_: "An exception was thrown while executing function(Divide): std::domain_error: ..."
///   }
/// @endcode
///
/// Where they come from here:
/// @code
///   RayTaskException    Get of a task or actor call that threw; names the function, the
///                       exception's type and its what(), as Ray's workers do.
///   RayActorException   a call to an actor that has ended (killed, ExitActor(), its factory
///                       threw, or its runtime shut down).
///   RayTimeoutException Get with a timeout that passed before the object was ready.
///   RayRuntimeEnvException  a RuntimeEnv field that is missing or does not convert, and
///                       "env_vars" that are not strings.
///   RayException        misuse: an unregistered function, bad resources, a cluster address.
/// @endcode
/// UnreconstructableException, RayFunctionNotFound and RayWorkerException exist so that code
/// catching them compiles; in one process nothing is lost to a dead node or worker, so nothing
/// throws them.
#pragma once

#include <exception>
#include <string>

namespace ray::internal {

class RayException : public std::exception {
 public:
  RayException(const std::string& msg) : msg_(msg) {}
  const char* what() const noexcept override { return msg_.c_str(); }

  std::string msg_;
};

class RayActorException : public RayException {
 public:
  RayActorException(const std::string& msg) : RayException(msg) {}
};

class RayTaskException : public RayException {
 public:
  RayTaskException(const std::string& msg) : RayException(msg) {}
};

class RayWorkerException : public RayException {
 public:
  RayWorkerException(const std::string& msg) : RayException(msg) {}
};

class UnreconstructableException : public RayException {
 public:
  UnreconstructableException(const std::string& msg) : RayException(msg) {}
};

class RayFunctionNotFound : public RayException {
 public:
  RayFunctionNotFound(const std::string& msg) : RayException(msg) {}
};

class RayRuntimeEnvException : public RayException {
 public:
  RayRuntimeEnvException(const std::string& msg) : RayException(msg) {}
};

class RayTimeoutException : public RayException {
 public:
  RayTimeoutException(const std::string& msg) : RayException(msg) {}
};

}  // namespace ray::internal
