/// @file
/// How the arguments of Remote(...) reach a remote function's parameters, as Ray passes them:
/// by value (a task never shares an argument with its caller), with ObjectRef arguments
/// resolved to their values unless the parameter is itself an ObjectRef. Used by ray::Task,
/// ray::Actor and actor method calls; nothing here is meant for user code.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lumen/detail/actor_core.h"
#include "lumen/object_ref.h"
#include "lumen/ray/exception.h"
#include "lumen/ray/object_ref.h"

namespace ray::internal {

// The return type, parameters and class of a function or member function pointer, with every
// cv-, ref- and noexcept-qualification a member function may carry. `rvalue_object` is true
// for methods callable only on an rvalue (`int Take() &&`): the call moves the actor's object.
template <class F>
struct signature;
template <class R, class... P>
struct signature<R (*)(P...)> {
  using result = R;
  using params = std::tuple<P...>;
};
template <class R, class... P>
struct signature<R (*)(P...) noexcept> : signature<R (*)(P...)> {};

template <class R, class C, bool Rvalue, class... P>
struct member_signature {
  using result = R;
  using params = std::tuple<P...>;
  using object = C;
  static constexpr bool rvalue_object = Rvalue;
};
#define LUMEN_RAY_MEMBER_SIGNATURE(qualifiers, rvalue)                                       \
  template <class R, class C, class... P>                                                     \
  struct signature<R (C::*)(P...) qualifiers> : member_signature<R, C, rvalue, P...> {};      \
  template <class R, class C, class... P>                                                     \
  struct signature<R (C::*)(P...) qualifiers noexcept> : member_signature<R, C, rvalue, P...> {};
LUMEN_RAY_MEMBER_SIGNATURE(, false)
LUMEN_RAY_MEMBER_SIGNATURE(const, false)
LUMEN_RAY_MEMBER_SIGNATURE(&, false)
LUMEN_RAY_MEMBER_SIGNATURE(const&, false)
LUMEN_RAY_MEMBER_SIGNATURE(&&, true)
LUMEN_RAY_MEMBER_SIGNATURE(const&&, true)
#undef LUMEN_RAY_MEMBER_SIGNATURE

template <class F>
using result_of = std::decay_t<typename signature<F>::result>;

template <class F, class... Args>
constexpr void check_argument_count() {
  static_assert(std::tuple_size_v<typename signature<F>::params> == sizeof...(Args),
                "Remote(...) takes as many arguments as the function has parameters");
}

// An ObjectRef argument whose value a parameter needs names no object.
[[noreturn]] void throw_empty_argument();
// An ObjectRef argument for a parameter declared ObjectRef<T>: std::invalid_argument, as a
// Ray cluster gives, unless RayConfig::local_mode (Ray's local mode passes the ref).
void check_ref_to_ref_parameter();

template <class... P, class... A>
void check_ref_arguments(std::tuple<P...>*, std::tuple<A...>*) {
  if constexpr (sizeof...(P) == sizeof...(A)) {
    if constexpr (((is_object_ref_v<A> && is_object_ref_v<std::remove_cvref_t<P>>) || ...)) check_ref_to_ref_parameter();
  }
}

// Remote(args...) of F: as many arguments as parameters (at compile time), and no ObjectRef
// argument for a parameter declared ObjectRef<T> (std::invalid_argument, as a Ray cluster
// refuses it), except in local mode, which passes the ref as Ray's local mode does.
template <class F, class... Args>
void check_arguments() {
  check_argument_count<F, Args...>();
  check_ref_arguments(static_cast<typename signature<F>::params*>(nullptr), static_cast<std::tuple<Args...>*>(nullptr));
}

// What Remote keeps of an argument for a parameter of type P until the call runs: a value of
// the parameter's type (Ray converts arguments to it when it serializes them), or, for a
// task's ObjectRef argument, the lumen::ObjectRef that lumen waits for and passes as the
// value; an ObjectRef argument for an ObjectRef parameter (local mode only) is kept as it is.
template <class P, bool ResolveByLumen, class A>
auto stored_argument(A&& a) {
  using Param = std::remove_cvref_t<P>;
  if constexpr (is_object_ref_v<A> && !is_object_ref_v<Param>) {
    if (!a.native().valid()) throw_empty_argument();
  }
  if constexpr (is_object_ref_v<A> && !is_object_ref_v<Param> && ResolveByLumen) {
    return a.native();
  } else if constexpr (is_object_ref_v<A> && !is_object_ref_v<Param>) {
    return std::remove_cvref_t<A>(std::forward<A>(a));
  } else {
    return Param(std::forward<A>(a));
  }
}

// The argument for a parameter of type P from what the call received: its own stored value
// (an rvalue it may take) or an object's value in the table (const: other readers share it).
// A non-const reference parameter gets an lvalue; one that would bind to a shared value gets
// a copy instead, as a Ray worker's parameter is its own. An rvalue reference parameter takes
// the stored value, or a copy of it when lumen passes it as an lvalue (a task that may run
// again keeps its arguments). A Bound lives until the call returns.
template <class P, class A,
          bool Copy = (std::is_const_v<std::remove_reference_t<A>> && std::is_reference_v<P> &&
                       !std::is_const_v<std::remove_reference_t<P>>) ||
                      (std::is_rvalue_reference_v<P> && std::is_lvalue_reference_v<A>)>
class Bound {
 public:
  explicit Bound(A&& a) : a_(std::forward<A>(a)) {}
  decltype(auto) get() {
    if constexpr (std::is_lvalue_reference_v<P>) {
      return static_cast<std::remove_reference_t<A>&>(a_);
    } else {
      return std::forward<A>(a_);
    }
  }

 private:
  A&& a_;
};

template <class P, class A>
class Bound<P, A, true> {
 public:
  explicit Bound(A&& a) : copy_(a) {}
  decltype(auto) get() {
    if constexpr (std::is_lvalue_reference_v<P>) {
      return static_cast<std::remove_cvref_t<P>&>(copy_);
    } else {
      return std::move(copy_);
    }
  }

 private:
  std::remove_cvref_t<P> copy_;
};

// A ray::ObjectRef kept for a plain parameter (an actor's factory arguments) is read here;
// inside a task or an actor this parks the fiber until the object is ready.
template <class P, class A>
decltype(auto) resolved(A&& a) {
  if constexpr (is_object_ref_v<A> && !is_object_ref_v<std::remove_cvref_t<P>>) {
    return lumen::get(a.native());
  } else {
    return std::forward<A>(a);
  }
}

template <class... P, class F, class... A>
decltype(auto) invoke_bound(std::tuple<P...>*, F& f, A&&... a) {
  return std::invoke(f, Bound<P, decltype(resolved<P>(std::forward<A>(a)))>(resolved<P>(std::forward<A>(a))).get()...);
}

template <class... P, class M, class C, class... A>
decltype(auto) invoke_method_bound(std::tuple<P...>*, M m, C& object, A&&... a) {
  using Object = std::conditional_t<signature<M>::rvalue_object, C&&, C&>;
  return std::invoke(m, static_cast<Object>(object),
                     Bound<P, decltype(resolved<P>(std::forward<A>(a)))>(resolved<P>(std::forward<A>(a))).get()...);
}

// Turns the exception being handled into the RayTaskException a Ray worker reports for it.
[[noreturn]] void throw_task_exception(const std::string& function_name);

// Runs a remote function's body; what it throws reaches Get as RayTaskException naming the
// function, except the request of ExitActor(), which the actor itself handles.
template <class Body>
decltype(auto) run_remote(const std::string& function_name, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const lumen::detail::actor_exit_request&) {
    throw;
  } catch (...) {
    throw_task_exception(function_name);
  }
}

// The callable a task runs: the function, its registered name, the Ray way of passing
// arguments.
template <class F>
struct TaskInvoker {
  F function;
  const std::string* name;

  template <class... A>
  typename signature<F>::result operator()(A&&... a) {
    return run_remote(*name, [&]() -> decltype(auto) {
      return invoke_bound(static_cast<typename signature<F>::params*>(nullptr), function, std::forward<A>(a)...);
    });
  }
};

}  // namespace ray::internal
