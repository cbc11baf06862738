// The shim's one error rule: run a body, turn any C++ exception into a malloc'd message (NULL on success)
// that Rust reads and frees with tx_free_error (libtorch's own errors without their C++ backtrace). Nothing
// throws across the C ABI.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>

#include <c10/util/Exception.h>

#define TX_GUARD(...)                          \
  try {                                        \
    __VA_ARGS__;                               \
    return nullptr;                            \
  } catch (const c10::Error& e) {              \
    return strdup(e.what_without_backtrace()); \
  } catch (const std::exception& e) {          \
    return strdup(e.what());                   \
  } catch (...) {                              \
    return strdup("unknown C++ exception");    \
  }
