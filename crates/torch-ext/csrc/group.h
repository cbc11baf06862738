// What every process group of the shim is (Gloo in dist.cpp, NCCL in dist_nccl.cpp): the store the ranks met
// at, the c10d backend, and the timeout every collective is bounded by; and the rendezvous both start with.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdint>
#include <string>

// Where the ranks meet and who this one is (the same for every backend).
struct tx_rendezvous {
  const char* host;
  int port;
  int rank;
  int world;
  int64_t timeout_ms;
};

struct tx_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

struct tx_work {
  c10::intrusive_ptr<c10d::Work> work;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

// Waits for a collective. Gloo: bounded here by the timeout. NCCL: wait() without a timeout, which only makes
// the current CUDA stream wait (with one it would block this thread until the GPU is done); NCCL's watchdog
// enforces the group's timeout instead.
inline void finish(const c10::intrusive_ptr<c10d::Work>& work, const c10d::Backend& backend,
                   std::chrono::milliseconds timeout) {
  if (backend.getBackendName() == "nccl") {
    work->wait();
  } else if (!work->wait(timeout)) {
    throw std::runtime_error("collective did not complete");
  }
}

inline std::chrono::milliseconds timeout_of(const tx_rendezvous& r) { return std::chrono::milliseconds(r.timeout_ms); }

// Rendezvous at host:port: rank 0 serves the store and waits (up to the timeout) for all `world` ranks.
inline c10::intrusive_ptr<c10d::Store> tcp_store(const tx_rendezvous& r) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(r.port);
  so.isServer = r.rank == 0;
  so.numWorkers = r.world;
  so.waitWorkers = true;
  so.timeout = timeout_of(r);
  return c10::make_intrusive<c10d::TCPStore>(std::string(r.host), so);
}
