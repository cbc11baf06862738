// What libtorch has and tch's C API does not expose: autocast for a chosen device and dtype (tch only toggles
// CUDA's, in fp16), memory formats, and the CPU's capabilities. Errors: see guard.h.

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>

#include "guard.h"

#include <string>

namespace {

at::DeviceType device_type(int device) { return device == 1 ? at::kCUDA : at::kCPU; }

}  // namespace

extern "C" {

void tx_free_error(char* e) { free(e); }

// Enters an autocast region on `device` (0 CPU, 1 CUDA) in `dtype` (a c10::ScalarType code), saving the state
// it replaces; the nesting counter is what lets libtorch cache casted weights within one region.
char* tx_autocast_enter(int device, int dtype, bool* prev_enabled, int* prev_dtype) {
  TX_GUARD({
    auto d = device_type(device);
    *prev_enabled = at::autocast::is_autocast_enabled(d);
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(d));
    at::autocast::set_autocast_dtype(d, static_cast<at::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(d, true);
    at::autocast::increment_nesting();
  })
}

// Leaves the region: the cast cache is cleared when the outermost region ends (as torch.autocast's __exit__).
char* tx_autocast_exit(int device, bool prev_enabled, int prev_dtype) {
  TX_GUARD({
    auto d = device_type(device);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(d, prev_enabled);
    at::autocast::set_autocast_dtype(d, static_cast<at::ScalarType>(prev_dtype));
  })
}

char* tx_autocast_is_enabled(int device, bool* enabled) {
  TX_GUARD({ *enabled = at::autocast::is_autocast_enabled(device_type(device)); })
}

// A copy of `t` in channels-last layout (NHWC strides, same NCHW shape), or `t` itself if it already is.
char* tx_channels_last(const at::Tensor* t, at::Tensor** out) {
  TX_GUARD({ *out = new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast)); })
}

char* tx_is_channels_last(const at::Tensor* t, bool* yes) {
  TX_GUARD({ *yes = t->is_contiguous(at::MemoryFormat::ChannelsLast); })
}

// One boolean capability of this CPU as libtorch's cpuinfo reports it ("avx512_bf16", "amx_bf16", "avx2", ...):
// 1 yes, 0 no, -1 when the name is unknown to this libtorch.
char* tx_cpu_capability(const char* name, int* value) {
  TX_GUARD({
    auto caps = at::cpu::get_cpu_capabilities();
    auto it = caps.find(name);
    if (it == caps.end() || !it->second.isBool()) {
      *value = -1;
    } else {
      *value = it->second.toBool() ? 1 : 0;
    }
  })
}

}  // extern "C"
