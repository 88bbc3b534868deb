/// @file
/// ray::internal::Serializer: msgpack in and out, as Ray's runtime packs arguments and results.
/// lumen itself never serializes (values cross task boundaries as C++ copies); this is for
/// programs that store or send values in Ray's format themselves.
///
/// @code
///   msgpack::sbuffer bytes = ray::internal::Serializer::Serialize(std::vector<int>{1, 2});
///   auto back = ray::internal::Serializer::Deserialize<std::vector<int>>(bytes.data(), bytes.size());
/// @endcode
///
/// Deserialize throws msgpack's exceptions (msgpack::type_error, msgpack::unpack_error) when
/// the bytes are not a T.
#pragma once

#include <cstddef>

#include <msgpack.hpp>

namespace ray::internal {

class Serializer {
 public:
  template <class T>
  static msgpack::sbuffer Serialize(const T& value) {
    msgpack::sbuffer buffer;
    msgpack::pack(buffer, value);
    return buffer;
  }
  template <class T>
  static T Deserialize(const char* data, std::size_t size) {
    msgpack::object_handle handle = msgpack::unpack(data, size);
    return handle.get().as<T>();
  }
  // The value that starts `offset` bytes into data.
  template <class T>
  static T Deserialize(const char* data, std::size_t size, std::size_t offset) {
    return Deserialize<T>(data + offset, size - offset);
  }
};

}  // namespace ray::internal
