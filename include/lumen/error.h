/// @file
/// lumen's error types. Every error lumen itself raises derives from lumen::error.
///
/// Exceptions thrown by user tasks are not wrapped: get() rethrows the original exception, so
/// `catch (const std::out_of_range&)` works. Which task failed is kept beside it and reported by
/// lumen::error_of(ref) as a task_error.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace lumen {

/// The base of every error lumen raises.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// get() or wait() with a timeout that passed before the object was ready; also the failure
/// of a task whose TaskOptions::timeout passed before it finished.
class timeout_error : public error {
 public:
  using error::error;
};

/// The failure of a task or actor call that lumen::cancel() stopped (see lumen/cancel.h).
/// what() names the task.
class cancelled_error : public error {
 public:
  using error::error;
};

/// Work submitted to a runtime that is shutting down.
class shutdown_error : public error {
 public:
  using error::error;
};

/// A bad argument or a misuse of the API: an empty ObjectRef, an unknown resource, ...
class usage_error : public error {
 public:
  using error::error;
};

/// The process ran out of something lumen needs and cannot make up for: fiber stacks (see
/// Config::max_fibers and vm.max_map_count), threads, or memory for a structure whose size the
/// caller chose. what() names the resource and the limit. Nothing was lost: the operation that
/// throws it did not start.
class resource_error : public error {
 public:
  using error::error;
};

/// A call to an actor that has ended: killed, stopped by exit_actor(), failed in its
/// constructor, or gone with its runtime. what() says which actor and why; the parts are there
/// to read on their own as well.
class actor_died : public error {
 public:
  /// Names the actor (by name, else by id) and says why it ended.
  actor_died(std::uint64_t actor_id, std::string actor_name, std::string reason)
      : error("lumen: " + (actor_name.empty() ? "actor #" + std::to_string(actor_id) : "actor '" + actor_name + "'") +
              " died: " + reason),
        actor_id_(actor_id),
        actor_name_(std::move(actor_name)),
        reason_(std::move(reason)) {}
  /// The id of ActorHandle::id().
  std::uint64_t actor_id() const noexcept { return actor_id_; }
  /// ActorOptions::name, or empty for an anonymous actor.
  const std::string& actor_name() const noexcept { return actor_name_; }
  /// Why it ended, e.g. "it was killed", "its constructor threw std::runtime_error: ...".
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::uint64_t actor_id_;
  std::string actor_name_;
  std::string reason_;
};

/// Describes a failed task: its name, and the exception it threw (or that a dependency threw).
class task_error : public error {
 public:
  /// `description` is the message; `cause` is what the task threw (or what a dependency threw);
  /// `attempts` counts runs, retries included.
  task_error(const std::string& description, std::string task_name, std::exception_ptr cause, int attempts = 1)
      : error(description), task_name_(std::move(task_name)), cause_(std::move(cause)), attempts_(attempts) {}
  /// The name given with task(f).name(...), or empty.
  const std::string& task_name() const noexcept { return task_name_; }
  /// How many times the task ran (1 + its retries); what() says so when more than once.
  int attempts() const noexcept { return attempts_; }
  /// The original exception; std::rethrow_exception(cause()) throws it with its own type.
  const std::exception_ptr& cause() const noexcept { return cause_; }

 private:
  std::string task_name_;
  std::exception_ptr cause_;
  int attempts_ = 1;
};

}  // namespace lumen
