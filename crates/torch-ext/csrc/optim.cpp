// libtorch's fused Adam/AdamW kernels (what `torch.optim.Adam(fused=True)` runs): one vectorised, parallel pass
// over each parameter that reads the gradient and the two moments once and writes parameter and moments in
// place, with no temporaries. The caller owns the step count; the kernel reads it from `step` (already
// incremented for this update), as PyTorch's optimiser increments its state_steps before the call.

#include <ATen/ATen.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>

#include "guard.h"
#include "tensor_list.h"

#include <vector>

extern "C" {

// One update of n parameters at learning rate `lr`. `decoupled`: AdamW's weight decay (parameter scaled by
// 1 - lr·wd), else Adam's L2 term added to the gradient.
char* tx_fused_adam(at::Tensor* const* params, at::Tensor* const* grads, at::Tensor* const* exp_avgs,
                    at::Tensor* const* exp_avg_sqs, int n, const at::Tensor* step, double lr, double beta1,
                    double beta2, double weight_decay, double eps, bool decoupled) {
  TX_GUARD({
    auto p = tensor_list(params, n);
    auto g = tensor_list(grads, n);
    auto m = tensor_list(exp_avgs, n);
    auto v = tensor_list(exp_avg_sqs, n);
    std::vector<at::Tensor> steps(n, *step);
    std::vector<at::Tensor> no_max;
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
  })
}

// Drops each tensor's gradient (PyTorch's `zero_grad(set_to_none=True)`): the next backward then hands its
// gradient buffer over instead of adding into a zeroed one.
char* tx_clear_grads(at::Tensor* const* ts, int n) {
  TX_GUARD({
    for (int i = 0; i < n; ++i) ts[i]->mutable_grad().reset();
  })
}

}  // extern "C"
