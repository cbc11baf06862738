// libtorch's c10d, as PyTorch's DistributedDataParallel uses it: a TCPStore for the rendezvous, a Gloo process
// group (CPU tensors), and the collectives a data-parallel trainer needs. Errors (a peer that is missing, a
// timeout, a closed connection) come back as messages, never as exceptions across the C ABI.

#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "guard.h"
#include "tensor_list.h"

#include <chrono>
#include <string>
#include <vector>

struct tx_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

struct tx_work {
  c10::intrusive_ptr<c10d::Work> work;
  std::chrono::milliseconds timeout;
};

extern "C" {

// Rendezvous at host:port (rank 0 serves the store and waits for all `world` ranks), then a Gloo group over
// the network interface `iface` (empty: the address `host` resolves to on this machine; loopback for a
// single-machine run).
char* tx_group_new_gloo(const char* host, int port, int rank, int world, int64_t timeout_ms, const char* iface,
                        tx_group** out) {
  TX_GUARD({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    std::string name(iface);
    opts->devices.push_back(name.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(host)
                                         : c10d::ProcessGroupGloo::createDeviceForInterface(name));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    *out = new tx_group{store, c10::static_intrusive_pointer_cast<c10d::Backend>(pg), timeout};
  })
}

void tx_group_free(tx_group* g) { delete g; }
void tx_work_free(tx_work* w) { delete w; }

// Sum of each tensor over all ranks, in place, started asynchronously: wait with tx_work_wait.
char* tx_allreduce_sum(tx_group* g, at::Tensor* const* ts, int n, tx_work** out) {
  TX_GUARD({
    auto v = tensor_list(ts, n);
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = g->timeout;
    *out = new tx_work{g->backend->allreduce(v, o), g->timeout};
  })
}

char* tx_work_wait(tx_work* w) {
  TX_GUARD({
    if (!w->work->wait(w->timeout)) throw std::runtime_error("collective did not complete");
  })
}

// Rank `root`'s tensors copied into every rank's, in place.
char* tx_broadcast(tx_group* g, at::Tensor* const* ts, int n, int root) {
  TX_GUARD({
    auto v = tensor_list(ts, n);
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g->timeout;
    g->backend->broadcast(v, o)->wait(g->timeout);
  })
}

// Every rank's `input` (same shape on all) into outs[0..world), rank order.
char* tx_allgather(tx_group* g, const at::Tensor* input, at::Tensor* const* outs, int world) {
  TX_GUARD({
    std::vector<std::vector<at::Tensor>> o{tensor_list(outs, world)};
    std::vector<at::Tensor> in{*input};
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    g->backend->allgather(o, in, opts)->wait(g->timeout);
  })
}

char* tx_barrier(tx_group* g) {
  TX_GUARD({
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    g->backend->barrier(o)->wait(g->timeout);
  })
}

}  // extern "C"
