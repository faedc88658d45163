// Errors with context. Inside one binary (host or plugin) errors travel as
// banyan::Error exceptions; across the plugin boundary they travel as a
// BanyanError code and message (see abi.h), never as exceptions.
#pragma once

#include <banyan/abi.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace banyan {

enum class Code : int32_t {
  ok = BANYAN_OK,
  invalid_argument = BANYAN_INVALID_ARGUMENT,
  not_found = BANYAN_NOT_FOUND,
  unsupported = BANYAN_UNSUPPORTED,
  out_of_memory = BANYAN_OUT_OF_MEMORY,
  internal = BANYAN_INTERNAL,
};

/// An error that says what failed and where (file, tensor, key, request).
class Error : public std::runtime_error {
 public:
  Error(Code code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  explicit Error(std::string message) : Error(Code::invalid_argument, std::move(message)) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

/// Fills a C error buffer (truncating safely) and returns its code.
inline int32_t set_error(BanyanError* err, Code code, const char* message) {
  if (err) {
    err->code = static_cast<int32_t>(code);
    std::snprintf(err->message, sizeof(err->message), "%s", message ? message : "");
  }
  return static_cast<int32_t>(code);
}

/// Runs f, turning any exception into a C error. For plugin entry points.
template <class F>
int32_t guard(BanyanError* err, F&& f) noexcept {
  try {
    std::forward<F>(f)();
    return BANYAN_OK;
  } catch (const Error& e) {
    return set_error(err, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return set_error(err, Code::out_of_memory, "out of memory");
  } catch (const std::exception& e) {
    return set_error(err, Code::internal, e.what());
  } catch (...) {
    return set_error(err, Code::internal, "unknown exception");
  }
}

/// Throws banyan::Error when a C call failed.
inline void check(int32_t rc, const BanyanError& err) {
  if (rc != BANYAN_OK) throw Error(static_cast<Code>(rc), err.message);
}

}  // namespace banyan
