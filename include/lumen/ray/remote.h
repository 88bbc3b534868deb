/// @file
/// Registering remote functions: RAY_REMOTE and RAY_FUNC.
///
/// @code
///   int Plus(int a, int b) { return a + b; }
///   class Counter {
///    public:
///     static Counter* FactoryCreate(int start) { return new Counter(start); }
///     int Add(int k);
///   };
///   RAY_REMOTE(Plus, Counter::FactoryCreate, &Counter::Add);
/// @endcode
///
/// @code
///   int Twice(int x);
///   int Twice(int x, int y);
///   RAY_REMOTE(RAY_FUNC(Twice, int), RAY_FUNC(Twice, int, int));  // one overload each
/// @endcode
///
/// As in Ray, ray::Task(f), ray::Actor(factory) and handle.Task(&C::m) accept only registered
/// functions (else RayException "Function not found. Please use RAY_REMOTE to register this
/// function."), and registering one function, or one name, twice throws RayException
/// "Duplicate RAY_REMOTE function: NAME" during static initialization. Write RAY_REMOTE once,
/// in a .cpp file. A function's name is its text in RAY_REMOTE; it names the function in
/// RayTaskException messages. In one process nothing looks functions up by name: the
/// registry exists so that a program that runs here also runs on Ray.
#pragma once

#include <cstring>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "lumen/ray/exception.h"

namespace ray::internal {

// The bytes of a function or member function pointer: a key that tells functions apart.
template <class F>
std::string function_key(const F& f) {
  static_assert(std::is_pointer_v<F> || std::is_member_function_pointer_v<F>,
                "RAY_REMOTE and ray::Task take functions, static member functions and member functions");
  std::string key(sizeof(F), '\0');
  std::memcpy(key.data(), &f, sizeof(F));
  if constexpr (std::is_member_function_pointer_v<F>) {
    // Equal pointers to members of different classes are different functions.
    key += typeid(F).name();
  }
  return key;
}

// Adds `key` under `name`; throws RayException when either is registered already.
void register_function(std::string key, const std::string& name);
// The registered name of `key`, or null. Names live as long as the process.
const std::string* find_function(const std::string& key) noexcept;

// The name of `f`, or RayException when RAY_REMOTE did not register it. Each thread
// remembers the last function it looked up for each function type, so a loop that submits one
// function looks it up once.
template <class F>
const std::string& registered_name(const F& f) {
  thread_local F last{};
  thread_local const std::string* last_name = nullptr;
  if (last_name != nullptr && last == f) return *last_name;
  const std::string* name = find_function(function_key(f));
  if (name == nullptr) throw RayException("Function not found. Please use RAY_REMOTE to register this function.");
  last = f;
  last_name = name;
  return *name;
}

// Registers each function under its own text in `names` ("f, RAY_FUNC(g, int), &C::m").
void register_functions_from(const char* names, const std::string* keys, std::size_t count);

template <class... F>
bool register_remote_functions(const char* names, F... functions) {
  const std::string keys[] = {function_key(functions)...};
  register_functions_from(names, keys, sizeof...(F));
  return true;
}

// Ray's registry under Ray's name, for programs that call it directly (RAY_REMOTE is the
// usual way in). Thread-safe; names and functions are registered for the process's life.
class FunctionManager {
 public:
  static FunctionManager& Instance() {
    static FunctionManager manager;
    return manager;
  }
  // Registers f under `name`; throws RayException("Duplicate RAY_REMOTE function: NAME") when
  // f or the name is registered already.
  template <class F>
  bool RegisterRemoteFunction(const std::string& name, F f) {
    register_function(function_key(f), name);
    return true;
  }
  // The name f is registered under, or "" when it is not.
  template <class F>
  std::string GetFunctionName(F f) {
    const std::string* name = find_function(function_key(f));
    return name != nullptr ? *name : std::string();
  }
  // The class of a registered member or factory name: "Counter" for "Counter::FactoryCreate",
  // "&Counter::Add" or "RAY_FUNC(Counter::FactoryCreate, int)"; "" for a name without one.
  static std::string GetClassNameByFuncName(const std::string& function_name);
};

// RAY_FUNC(f, Args...): the overload of f that takes exactly Args. The parameter types are
// fixed by the class, so deduction cannot extend them to another overload's.
template <class... Args>
struct Overload {
  template <class R>
  static constexpr auto of(R (*f)(Args...)) {
    return f;
  }
#define LUMEN_RAY_OVERLOAD_OF(qualifiers)                 \
  template <class R, class C>                             \
  static constexpr auto of(R (C::*f)(Args...) qualifiers) { \
    return f;                                             \
  }
  LUMEN_RAY_OVERLOAD_OF()
  LUMEN_RAY_OVERLOAD_OF(const)
  LUMEN_RAY_OVERLOAD_OF(&)
  LUMEN_RAY_OVERLOAD_OF(const&)
  LUMEN_RAY_OVERLOAD_OF(&&)
  LUMEN_RAY_OVERLOAD_OF(const&&)
#undef LUMEN_RAY_OVERLOAD_OF
};

}  // namespace ray::internal

#define RAY_INTERNAL_CONCAT_(a, b) a##b
#define RAY_INTERNAL_CONCAT(a, b) RAY_INTERNAL_CONCAT_(a, b)

/// Registers the functions, static factories and member functions named as remote, once per
/// program and in a .cpp file; see the top of this file. A duplicate throws RayException during
/// static initialization.
#define RAY_REMOTE(...)                                                                           \
  [[maybe_unused]] static const bool RAY_INTERNAL_CONCAT(ray_remote_registered_, __LINE__) =      \
      ::ray::internal::register_remote_functions(#__VA_ARGS__, __VA_ARGS__)

/// The overload of f that takes exactly the parameter types `...`: how RAY_REMOTE, ray::Task
/// and handle.Task name one overload of an overloaded function.
#define RAY_FUNC(f, ...) ::ray::internal::Overload<__VA_ARGS__>::of(f)
