// The parameter types of a callable, when they can be known: functions, member functions,
// and function objects with one non-template operator(). Generic lambdas leave them unknown.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

namespace lumen::detail {

// Stands for a parameter whose type is not known (or the object of a member call).
struct unknown_param {};

template <class F, class = void>
struct callable_params {
  using type = void;  // unknown
};

template <class R, class... A>
struct callable_params<R (*)(A...), void> {
  using type = std::tuple<A...>;
};
template <class R, class... A>
struct callable_params<R (*)(A...) noexcept, void> {
  using type = std::tuple<A...>;
};
template <class R, class... A>
struct callable_params<R(A...), void> {
  using type = std::tuple<A...>;
};

#define LUMEN_MEMBER_PARAMS(QUALS)                                  \
  template <class R, class C, class... A>                           \
  struct callable_params<R (C::*)(A...) QUALS, void> {              \
    using type = std::tuple<unknown_param, A...>;                   \
  };                                                                \
  template <class R, class C, class... A>                           \
  struct callable_params<R (C::*)(A...) QUALS noexcept, void> {     \
    using type = std::tuple<unknown_param, A...>;                   \
  };
LUMEN_MEMBER_PARAMS()
LUMEN_MEMBER_PARAMS(const)
LUMEN_MEMBER_PARAMS(&)
LUMEN_MEMBER_PARAMS(const&)
LUMEN_MEMBER_PARAMS(&&)
#undef LUMEN_MEMBER_PARAMS

template <class Tuple>
struct drop_first;
template <class First, class... Rest>
struct drop_first<std::tuple<First, Rest...>> {
  using type = std::tuple<Rest...>;
};

// Function objects: the parameters of their operator(), without the object.
template <class F>
struct callable_params<F, std::void_t<decltype(&F::operator())>> {
  using type = typename drop_first<typename callable_params<decltype(&F::operator())>::type>::type;
};

// The declared type of parameter I, or unknown_param.
template <class F, std::size_t I, class Params = typename callable_params<std::decay_t<F>>::type>
struct param_at {
  using type = unknown_param;
};
template <class F, std::size_t I, class... P>
  requires(I < sizeof...(P))
struct param_at<F, I, std::tuple<P...>> {
  using type = std::tuple_element_t<I, std::tuple<P...>>;
};

}  // namespace lumen::detail
