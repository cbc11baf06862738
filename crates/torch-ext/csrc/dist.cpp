// libtorch's c10d, as PyTorch's DistributedDataParallel uses it: a TCPStore for the rendezvous, a Gloo process
// group (CPU tensors), and the collectives a data-parallel trainer needs. Errors (a peer that is missing, a
// timeout, a closed connection) come back as messages, never as exceptions across the C ABI.

#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/autograd/custom_function.h>

#include "group.h"
#include "guard.h"
#include "tensor_list.h"

#include <chrono>
#include <string>
#include <vector>


namespace {

using Backend = c10::intrusive_ptr<c10d::Backend>;

// The two collectives the exported calls and the synchronised batch norm share, with the group's timeout.
c10::intrusive_ptr<c10d::Work> start_allreduce_sum(const Backend& b, std::chrono::milliseconds timeout,
                                                   std::vector<at::Tensor>& v) {
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = timeout;
  return b->allreduce(v, o);
}

void allgather_into(const Backend& b, std::chrono::milliseconds timeout, std::vector<at::Tensor> outs,
                    const at::Tensor& t) {
  std::vector<std::vector<at::Tensor>> o{std::move(outs)};
  std::vector<at::Tensor> in{t};
  c10d::AllgatherOptions opts;
  opts.timeout = timeout;
  finish(b->allgather(o, in, opts), *b, timeout);
}

// Every rank's `t` (same shape everywhere), stacked along a new first dimension in rank order.
at::Tensor allgather_stacked(const Backend& b, std::chrono::milliseconds timeout, const at::Tensor& t) {
  std::vector<at::Tensor> parts;
  for (int r = 0; r < b->getSize(); ++r) parts.push_back(at::empty_like(t));
  allgather_into(b, timeout, parts, t);
  return at::stack(parts);
}

void allreduce_sum_now(const Backend& b, std::chrono::milliseconds timeout, at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  finish(start_allreduce_sum(b, timeout, v), *b, timeout);
}

// Every dimension but the channels (1): what batch norm averages over.
std::vector<int64_t> stat_dims(const at::Tensor& x) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

// A per-channel vector shaped to broadcast against `x` ([1, C, 1, ...]).
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

// Batch norm over the batch of every rank together (PyTorch's SyncBatchNorm, written with plain tensor ops so
// it runs on the CPU as well; libtorch's batch_norm_stats kernels are CUDA-only). Forward: each rank's
// per-channel mean, biased variance and row count are all-gathered and combined (the parallel-variance
// formula), so the statistics are those of the concatenated batch. Backward: the two per-channel sums the
// input gradient needs (of dy and of dy·x̂) are all-reduced, so each rank's input gradient is that of the
// sum of every rank's loss; the weight and bias gradients stay local, as every parameter's gradient does
// until the trainer averages them. Statistics and gradients in fp32 whatever the input's dtype.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x, at::Tensor weight, at::Tensor bias,
                            at::Tensor running_mean, at::Tensor running_var, double momentum, double eps,
                            const Backend& backend, int64_t timeout_ms) {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    TORCH_CHECK(x.dim() >= 2, "synchronised batch norm needs [N, C, ...] input, got ", x.dim(), " dimensions");
    auto xf = x.to(at::kFloat);
    auto dims = stat_dims(xf);
    int64_t c = xf.size(1);
    int64_t n = xf.numel() / c;
    // A rank with no rows contributes zeros (its count then weighs them out), not the NaN of an empty mean.
    auto mean = n > 0 ? xf.mean(dims) : at::zeros({c}, xf.options());
    auto var = n > 0 ? (xf - per_channel(mean, xf)).square().mean(dims) : at::zeros({c}, xf.options());
    auto rows = at::full({1}, static_cast<double>(n), mean.options());
    auto all = allgather_stacked(backend, timeout, at::cat({mean, var, rows}));  // [world, 2C + 1]
    auto counts = all.narrow(1, 2 * c, 1);                                      // [world, 1]
    // Some rank must have rows: the trainer gives every rank an equal, non-empty share of each batch (checked
    // when it joins the group). Checked here only where it costs nothing: on a GPU the read would stall the
    // host once per batch norm, so there an all-empty batch gets zero statistics instead of NaN.
    auto total = counts.sum();
    if (!total.is_cuda()) {
      TORCH_CHECK(total.item<double>() > 0, "synchronised batch norm: no rank has any rows");
    }
    total = total.clamp_min(1);
    auto means = all.narrow(1, 0, c);
    auto g_mean = (means * counts).sum(0) / total;
    auto g_var = ((all.narrow(1, c, c) + (means - g_mean).square()) * counts).sum(0) / total;
    auto invstd = (g_var + eps).rsqrt();
    if (running_mean.defined()) {
      // As nn.BatchNorm: the running variance takes the unbiased estimate over all rows.
      running_mean.mul_(1.0 - momentum).add_(g_mean, momentum);
      running_var.mul_(1.0 - momentum).add_(g_var * total / (total - 1).clamp_min(1), momentum);
    }
    auto xhat = (xf - per_channel(g_mean, xf)) * per_channel(invstd, xf);
    auto y = xhat * per_channel(weight.to(at::kFloat), xf) + per_channel(bias.to(at::kFloat), xf);
    // The input as it came (not its fp32 copy, which would double what the graph keeps under bf16), and the
    // backend itself, so a backward after the group's handle is gone still has a live group.
    ctx->save_for_backward({x, weight, g_mean, invstd, total});
    ctx->saved_data["backend"] = c10::IValue::make_capsule(backend);
    ctx->saved_data["timeout_ms"] = timeout_ms;
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto backend = c10::static_intrusive_pointer_cast<c10d::Backend>(ctx->saved_data["backend"].toCapsule());
    auto timeout = std::chrono::milliseconds(ctx->saved_data["timeout_ms"].toInt());
    auto s = ctx->get_saved_variables();
    auto &x = s[0], &weight = s[1], &g_mean = s[2], &invstd = s[3], &total = s[4];
    auto dtype = x.scalar_type();
    auto xf = x.to(at::kFloat);
    auto dims = stat_dims(xf);
    int64_t c = xf.size(1);
    auto dy = grads[0].to(at::kFloat);
    auto xhat = (xf - per_channel(g_mean, xf)) * per_channel(invstd, xf);
    auto sum_dy = dy.sum(dims);
    auto sum_dy_xhat = (dy * xhat).sum(dims);
    auto both = at::cat({sum_dy, sum_dy_xhat});
    allreduce_sum_now(backend, timeout, both);
    auto scale = per_channel(weight.to(at::kFloat) * invstd, xf);
    auto dx = scale * (dy - per_channel(both.narrow(0, 0, c), xf) / total -
                       xhat * per_channel(both.narrow(0, c, c), xf) / total);
    // One gradient per forward argument: x, weight, bias, then none for the running statistics, momentum, eps,
    // backend and timeout.
    torch::autograd::variable_list out(9);
    out[0] = dx.to(dtype);
    out[1] = sum_dy_xhat.to(weight.scalar_type());
    out[2] = sum_dy.to(weight.scalar_type());
    return out;
  }
};

}  // namespace

extern "C" {

// Rendezvous (rank 0 serves the store and waits for all `world` ranks), then a Gloo group over the network
// interface `iface` (empty: the address the rendezvous host resolves to on this machine; loopback for a
// single-machine run).
char* tx_group_new_gloo(const tx_rendezvous* r, const char* iface, tx_group** out) {
  TX_GUARD({
    auto timeout = timeout_of(*r);
    auto store = tcp_store(*r);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    std::string name(iface);
    opts->devices.push_back(name.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(r->host)
                                         : c10d::ProcessGroupGloo::createDeviceForInterface(name));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, r->rank, r->world, opts);
    *out = new tx_group{store, c10::static_intrusive_pointer_cast<c10d::Backend>(pg), timeout};
  })
}

void tx_group_free(tx_group* g) { delete g; }
void tx_work_free(tx_work* w) { delete w; }

// Sum of each tensor over all ranks, in place, started asynchronously: wait with tx_work_wait.
char* tx_allreduce_sum(tx_group* g, at::Tensor* const* ts, int n, tx_work** out) {
  TX_GUARD({
    auto v = tensor_list(ts, n);
    *out = new tx_work{start_allreduce_sum(g->backend, g->timeout, v), g->backend, g->timeout};
  })
}

char* tx_work_wait(tx_work* w) {
  TX_GUARD({
    finish(w->work, *w->backend, w->timeout);
  })
}

// Rank `root`'s tensors copied into every rank's, in place.
char* tx_broadcast(tx_group* g, at::Tensor* const* ts, int n, int root) {
  TX_GUARD({
    auto v = tensor_list(ts, n);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g->timeout;
    finish(g->backend->broadcast(v, o), *g->backend, g->timeout);
  })
}

// Every rank's `input` (same shape on all) into outs[0..world), rank order.
char* tx_allgather(tx_group* g, const at::Tensor* input, at::Tensor* const* outs, int world) {
  TX_GUARD({
    allgather_into(g->backend, g->timeout, tensor_list(outs, world), *input);
  })
}

// Batch norm in training mode with statistics over every rank's batch (see SyncBatchNorm above); updates the
// running statistics in place. Collective: every rank calls it for the same layers in the same order.
char* tx_sync_batch_norm(tx_group* g, const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                         at::Tensor* running_mean, at::Tensor* running_var, double momentum, double eps,
                         at::Tensor** out) {
  TX_GUARD({
    auto y = SyncBatchNorm::apply(*x, *weight, *bias, *running_mean, *running_var, momentum, eps, g->backend,
                                  static_cast<int64_t>(g->timeout.count()));
    *out = new at::Tensor(y);
  })
}

char* tx_barrier(tx_group* g) {
  TX_GUARD({
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    finish(g->backend->barrier(o), *g->backend, g->timeout);
  })
}

}  // extern "C"
