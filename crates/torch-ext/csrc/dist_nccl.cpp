// The NCCL process group (CUDA tensors), as PyTorch's DistributedDataParallel uses on GPUs. Compiled only
// where build.rs finds the CUDA host headers NCCL's c10d header needs (the torch wheel's CUDA runtime package
// ships most of them; make setup adds the CCCL headers). The collectives are dist.cpp's: they go through the
// c10d Backend interface, whichever backend it is.

#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <c10/cuda/CUDAFunctions.h>

#include "group.h"
#include "guard.h"

extern "C" {

// Rendezvous, then an NCCL group whose rank works on CUDA device `device`.
char* tx_group_new_nccl(const tx_rendezvous* r, int device, tx_group** out) {
  TX_GUARD({
    auto gpus = c10::cuda::device_count();
    TORCH_CHECK(gpus == 0 || (device >= 0 && device < gpus), "NCCL needs CUDA device ", device,
                " but this process sees ", gpus, " CUDA device(s)");
    // Without any GPU, ProcessGroupNCCL's own constructor refuses (and the test of that path on CPU machines
    // goes through the real constructor).
    if (gpus > 0) c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto timeout = timeout_of(*r);
    auto store = tcp_store(*r);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, r->rank, r->world, opts);
    *out = new tx_group{store, c10::static_intrusive_pointer_cast<c10d::Backend>(pg), timeout};
  })
}

}  // extern "C"
