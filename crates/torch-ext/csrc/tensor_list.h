// The shim's one conversion of a C array of tensor pointers (what Rust passes) into the vector libtorch's
// list arguments take.
#pragma once

#include <ATen/ATen.h>

#include <vector>

inline std::vector<at::Tensor> tensor_list(at::Tensor* const* ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) v.push_back(*ts[i]);
  return v;
}
