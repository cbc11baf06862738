//! c10d, the engine under PyTorch's distributed training: a TCP store where the ranks meet and a Gloo (CPU
//! tensors) or NCCL (CUDA tensors) process group over it, with the collectives a data-parallel trainer needs — all-reduce (asynchronous,
//! so it can overlap other work), broadcast, all-gather, barrier. Every call is bounded by the group's
//! timeout; a missing or dead peer comes back as an error naming this rank, never as a hang.

use std::ffi::{c_int, CString};
use std::time::Duration;

use tch::Tensor;
use torch_sys::C_tensor;

use crate::ffi::{self, check, TxGroup, TxRendezvous, TxWork};
use crate::{Result, TorchExtError};

/// Where the ranks meet (the `MASTER_ADDR`/`MASTER_PORT` of torchrun) and who this one is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// Network interface for Gloo's traffic (torchrun's `GLOO_SOCKET_IFNAME`); `None`: the one `host` is
    /// reached through.
    pub interface: Option<String>,
    pub timeout: Duration,
}

/// How long past its timeout a join waits for c10d's own error before it gives its own.
const JOIN_GRACE: Duration = Duration::from_secs(2);

/// A pointer handed from the rendezvous thread to the joining one (the shim's objects are not tied to a thread).
struct SendPtr<T>(*mut T);
// SAFETY: the pointee is used by one thread at a time: the helper thread hands it over and never touches it again.
unsafe impl<T> Send for SendPtr<T> {}

/// A Gloo or NCCL process group. Collectives must be called in the same order on every rank, on tensors of
/// the group's kind (CPU for Gloo, the rank's CUDA device for NCCL).
pub struct ProcessGroup {
    ptr: *mut TxGroup,
    rank: usize,
    world: usize,
}

// SAFETY: the c10d group is thread-safe for use from one thread at a time; we only move it between threads.
unsafe impl Send for ProcessGroup {}

/// An all-reduce in flight; `wait` before reading its tensors.
#[must_use = "a collective must be waited for before its tensors are read"]
pub struct Work<'g> {
    ptr: *mut TxWork,
    group: &'g ProcessGroup,
}

fn c_string(call: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| TorchExtError { call, message: format!("{s:?} holds a NUL byte") })
}

fn ptrs(ts: &[Tensor]) -> Vec<*const C_tensor> {
    ts.iter().map(|t| t.as_ptr()).collect()
}

impl ProcessGroup {
    /// Joins a Gloo group (CPU tensors): rank 0 serves the store, every rank waits (up to the timeout) for all
    /// the others.
    pub fn gloo(r: &Rendezvous) -> Result<Self> {
        let iface = c_string("tx_group_new_gloo", r.interface.as_deref().unwrap_or(""))?;
        Self::join("tx_group_new_gloo", r, move |meet, out| {
            // SAFETY: a valid rendezvous, C string and out-pointer; the shim owns what it returns until
            // tx_group_free.
            unsafe { ffi::tx_group_new_gloo(meet, iface.as_ptr(), out) }
        })
    }

    /// Joins an NCCL group (CUDA tensors on device `cuda`, one device per rank), as PyTorch does on GPUs.
    /// An error where this build has no NCCL (the CUDA host headers were missing when it was compiled) or
    /// the process sees no such CUDA device.
    pub fn nccl(r: &Rendezvous, cuda: usize) -> Result<Self> {
        #[cfg(tx_nccl)]
        {
            Self::join("tx_group_new_nccl", r, move |meet, out| {
                // SAFETY: a valid rendezvous and out-pointer; the shim owns what it returns until tx_group_free.
                unsafe { ffi::tx_group_new_nccl(meet, cuda as c_int, out) }
            })
        }
        #[cfg(not(tx_nccl))]
        {
            let _ = (r, cuda);
            Err(TorchExtError {
                call: "tx_group_new_nccl",
                message: "this build has no NCCL: torch-ext was compiled without the CUDA host headers (run \
                          `make setup` with the CUDA torch wheel, then rebuild)"
                    .into(),
            })
        }
    }

    /// The rendezvous checks, its C form and the error wording both backends share; `create` makes the group.
    ///
    /// The join has a deadline of its own: c10d's store client honours its timeout only while it talks to a
    /// store, and one connected to something else on the port (a web server, say) waits forever. `create`
    /// runs on a helper thread; past the timeout (and a short grace for c10d's own, better-worded error) the
    /// join fails here, and the helper is left blocked until the process exits.
    fn join(
        call: &'static str,
        r: &Rendezvous,
        create: impl FnOnce(*const TxRendezvous, *mut *mut TxGroup) -> *mut std::ffi::c_char + Send + 'static,
    ) -> Result<Self> {
        if r.world == 0 || r.rank >= r.world {
            return Err(TorchExtError { call, message: format!("rank {} is outside a world of {}", r.rank, r.world) });
        }
        let fail = |message: String| TorchExtError {
            call,
            message: format!(
                "rank {} of {} could not join the group at {}:{} within {:?}: {message}",
                r.rank, r.world, r.host, r.port, r.timeout
            ),
        };
        let host = c_string(call, &r.host)?;
        let (port, rank, world, timeout_ms) =
            (c_int::from(r.port), r.rank as c_int, r.world as c_int, r.timeout.as_millis() as i64);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("rendezvous-rank-{}", r.rank))
            .spawn(move || {
                let meet = TxRendezvous { host: host.as_ptr(), port, rank, world, timeout_ms };
                let mut ptr = std::ptr::null_mut();
                let err = create(&meet, &mut ptr);
                let _ = tx.send((SendPtr(ptr), SendPtr(err)));
            })
            .map_err(|e| fail(format!("starting the rendezvous thread: {e}")))?;
        let (ptr, err) = match rx.recv_timeout(r.timeout + JOIN_GRACE) {
            Ok((ptr, err)) => (ptr.0, err.0),
            Err(_) => {
                return Err(fail(format!(
                    "no answer from a c10d store there (rank 0 serves it; if another program listens on port {}, \
                     choose a free MASTER_PORT)",
                    r.port
                )))
            }
        };
        check(call, err).map_err(|e| fail(e.message))?;
        Ok(ProcessGroup { ptr, rank: r.rank, world: r.world })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    fn named(&self, call: &'static str, err: *mut std::ffi::c_char) -> Result<()> {
        check(call, err)
            .map_err(|e| TorchExtError { message: format!("rank {} of {}: {}", self.rank, self.world, e.message), ..e })
    }

    /// Starts summing each of `ts` over all ranks, in place (one dtype within a call; the same shapes on
    /// every rank).
    pub fn all_reduce_sum<'g>(&'g self, ts: &[Tensor]) -> Result<Work<'g>> {
        let p = ptrs(ts);
        let mut w = std::ptr::null_mut();
        // SAFETY: live tensors for the call; the work keeps its own references to them.
        self.named("tx_allreduce_sum", unsafe {
            ffi::tx_allreduce_sum(self.ptr, p.as_ptr(), p.len() as c_int, &mut w)
        })?;
        Ok(Work { ptr: w, group: self })
    }

    /// Copies rank `root`'s `ts` into every rank's, in place.
    pub fn broadcast(&self, ts: &[Tensor], root: usize) -> Result<()> {
        let p = ptrs(ts);
        // SAFETY: live tensors for the duration of the (blocking) call.
        self.named("tx_broadcast", unsafe { ffi::tx_broadcast(self.ptr, p.as_ptr(), p.len() as c_int, root as c_int) })
    }

    /// Every rank's `input` (same shape everywhere), in rank order.
    pub fn all_gather(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        let outs: Vec<Tensor> = (0..self.world).map(|_| input.empty_like()).collect();
        let p = ptrs(&outs);
        // SAFETY: live tensors for the duration of the (blocking) call.
        self.named("tx_allgather", unsafe {
            ffi::tx_allgather(self.ptr, input.as_ptr(), p.as_ptr(), self.world as c_int)
        })?;
        Ok(outs)
    }

    /// Batch norm in training mode over the batch of every rank together (PyTorch's `SyncBatchNorm`):
    /// statistics of the concatenated batch, running statistics updated in place with them, and a backward
    /// that makes each rank's input gradient that of the sum of every rank's loss. Works on CPU tensors (the
    /// Gloo group). Collective: every rank must call it for the same layers in the same order.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_batch_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        // SAFETY: live tensors and group for the call; the autograd node keeps its own references to the tensors
        // and to the c10d backend, so a backward after this handle is dropped is still sound. On success we own
        // the new tensor.
        self.named("tx_sync_batch_norm", unsafe {
            ffi::tx_sync_batch_norm(
                self.ptr,
                x.as_ptr(),
                weight.as_ptr(),
                bias.as_ptr(),
                running_mean.as_ptr(),
                running_var.as_ptr(),
                momentum,
                eps,
                &mut out,
            )
        })?;
        // SAFETY: a new heap tensor from the shim, owned by tch from here.
        Ok(unsafe { Tensor::from_ptr(out) })
    }

    #[cfg(test)]
    pub(crate) fn barrier(&self) -> Result<()> {
        // SAFETY: a live group.
        self.named("tx_barrier", unsafe { ffi::tx_barrier(self.ptr) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by tx_group_new_gloo, freed once.
        unsafe { ffi::tx_group_free(self.ptr) }
    }
}

impl Work<'_> {
    pub fn wait(self) -> Result<()> {
        // SAFETY: a live work; freed by Drop after this.
        self.group.named("tx_work_wait", unsafe { ffi::tx_work_wait(self.ptr) })
    }
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        // SAFETY: created by tx_allreduce_sum, freed once.
        unsafe { ffi::tx_work_free(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn rendezvous(port: u16, rank: usize, world: usize, timeout: Duration) -> Rendezvous {
        Rendezvous { host: "127.0.0.1".into(), port, rank, world, interface: None, timeout }
    }

    /// Two ranks in two threads of this process (c10d allows it; the trainer uses processes).
    #[test]
    fn two_ranks_reduce_broadcast_gather_and_meet() {
        let port = free_port();
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let g = ProcessGroup::gloo(&rendezvous(port, rank, 2, Duration::from_secs(30))).unwrap();
                    let a = Tensor::from_slice(&[1.0f32, 2.0]) * (rank as f64 + 1.0);
                    let b = Tensor::from_slice(&[rank as i64]);
                    g.all_reduce_sum(&[a.shallow_clone()]).unwrap().wait().unwrap();
                    g.all_reduce_sum(&[b.shallow_clone()]).unwrap().wait().unwrap();
                    let c = Tensor::full([3], rank as f64 + 5.0, (Kind::Float, Device::Cpu));
                    g.broadcast(&[c.shallow_clone()], 1).unwrap();
                    let parts = g.all_gather(&Tensor::from_slice(&[rank as f32 * 10.0])).unwrap();
                    g.barrier().unwrap();
                    let v = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float)).unwrap();
                    (v(&a), v(&b), v(&c), parts.iter().map(v).collect::<Vec<_>>())
                })
            })
            .collect();
        for h in ranks {
            let (a, b, c, parts) = h.join().unwrap();
            assert_eq!(a, vec![3.0, 6.0]);
            assert_eq!(b, vec![1.0]);
            assert_eq!(c, vec![6.0; 3]);
            assert_eq!(parts, vec![vec![0.0], vec![10.0]]);
        }
    }

    /// Two ranks' synchronised batch norm against libtorch's own batch norm on the concatenated batch: the
    /// same outputs, running statistics, input gradients (of the summed loss) and summed weight gradients.
    #[test]
    fn synchronised_batch_norm_is_batch_norm_over_the_ranks_together() {
        // Uneven shares, so the counts matter.
        batch_norm_over_two_ranks_matches_the_joined_batch([(0, 3), (3, 5)]);
    }

    /// A rank without rows adds nothing (its zero statistics weigh nothing), not the NaN of an empty mean.
    #[test]
    fn a_rank_without_rows_leaves_the_others_batch_norm() {
        batch_norm_over_two_ranks_matches_the_joined_batch([(0, 8), (8, 0)]);
    }

    /// Two ranks holding rows `rows[r]` (start, length) of one batch of 8: outputs, gradients and running
    /// statistics are those of libtorch's batch norm over the 8 rows.
    fn batch_norm_over_two_ranks_matches_the_joined_batch(rows: [(i64, i64); 2]) {
        let port = free_port();
        let opts = (Kind::Float, Device::Cpu);
        // Per-channel offsets, so the mean shift matters.
        let x_all =
            Tensor::randn([8, 3, 2, 2], opts) * 2.0 + Tensor::from_slice(&[1.0f32, -3.0, 0.5]).view([1, 3, 1, 1]);
        let dy_all = Tensor::randn([8, 3, 2, 2], opts);
        let (w0, b0) = (Tensor::from_slice(&[1.5f32, 0.5, -1.0]), Tensor::from_slice(&[0.1f32, 0.2, 0.3]));
        let ranks: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(rank, &(start, len))| {
                let x = x_all.narrow(0, start, len).copy().set_requires_grad(true);
                let dy = dy_all.narrow(0, start, len).copy();
                let (w, b) = (w0.copy().set_requires_grad(true), b0.copy().set_requires_grad(true));
                std::thread::spawn(move || {
                    let g = ProcessGroup::gloo(&rendezvous(port, rank, 2, Duration::from_secs(30))).unwrap();
                    let (rm, rv) = (Tensor::zeros([3], opts), Tensor::ones([3], opts));
                    let y = g.sync_batch_norm(&x, &w, &b, &rm, &rv, 0.1, 1e-5).unwrap();
                    (&y * &dy).sum(Kind::Float).backward();
                    (y.detach(), x.grad(), w.grad(), b.grad(), rm, rv)
                })
            })
            .collect();
        let out: Vec<_> = ranks.into_iter().map(|h| h.join().unwrap()).collect();

        let x = x_all.copy().set_requires_grad(true);
        let (w, b) = (w0.copy().set_requires_grad(true), b0.copy().set_requires_grad(true));
        let (rm, rv) = (Tensor::zeros([3], opts), Tensor::ones([3], opts));
        let y = Tensor::batch_norm(&x, Some(&w), Some(&b), Some(&rm), Some(&rv), true, 0.1, 1e-5, false);
        (&y * &dy_all).sum(Kind::Float).backward();
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let d = f64::try_from((a - b).abs().max()).unwrap();
            assert!(d < 1e-5, "{what}: off by {d}");
        };
        close(&Tensor::cat(&[&out[0].0, &out[1].0], 0), &y.detach(), "output");
        close(&Tensor::cat(&[&out[0].1, &out[1].1], 0), &x.grad(), "input gradient");
        close(&(&out[0].2 + &out[1].2), &w.grad(), "weight gradient (summed over ranks)");
        close(&(&out[0].3 + &out[1].3), &b.grad(), "bias gradient (summed over ranks)");
        for o in &out {
            close(&o.4, &rm, "running mean");
            close(&o.5, &rv, "running variance");
        }
    }

    /// Where no rank has a row there are no statistics: on the CPU a clear error, not NaN running statistics.
    #[test]
    fn no_rows_anywhere_is_refused() {
        let opts = (Kind::Float, Device::Cpu);
        let g = ProcessGroup::gloo(&rendezvous(free_port(), 0, 1, Duration::from_secs(30))).unwrap();
        let x = Tensor::zeros([0, 2, 3, 3], opts);
        let (w, b) = (Tensor::ones([2], opts), Tensor::zeros([2], opts));
        let (rm, rv) = (Tensor::zeros([2], opts), Tensor::ones([2], opts));
        let e = g.sync_batch_norm(&x, &w, &b, &rm, &rv, 0.1, 1e-5).err().unwrap().to_string();
        assert!(e.contains("no rank has any rows"), "{e}");
        assert_eq!(Vec::<f32>::try_from(&rv).unwrap(), vec![1.0, 1.0], "running statistics untouched");
    }

    /// The autograd node holds the group's backend: a backward after the Rust handle is dropped still runs
    /// (one rank, so it equals plain batch norm).
    #[test]
    fn synchronised_batch_norm_backward_outlives_the_group_handle() {
        let opts = (Kind::Float, Device::Cpu);
        let g = ProcessGroup::gloo(&rendezvous(free_port(), 0, 1, Duration::from_secs(30))).unwrap();
        let x = Tensor::randn([5, 2, 3, 3], opts).set_requires_grad(true);
        let (w, b) = (Tensor::ones([2], opts), Tensor::zeros([2], opts));
        let (rm, rv) = (Tensor::zeros([2], opts), Tensor::ones([2], opts));
        let y = g.sync_batch_norm(&x, &w, &b, &rm, &rv, 0.1, 1e-5).unwrap();
        drop(g);
        (&y * &y).sum(Kind::Float).backward();
        let x2 = x.detach().copy().set_requires_grad(true);
        let want = Tensor::batch_norm(&x2, Some(&w), Some(&b), None, None, true, 0.1, 1e-5, false);
        (&want * &want).sum(Kind::Float).backward();
        assert!(f64::try_from((x.grad() - x2.grad()).abs().max()).unwrap() < 1e-5);
    }

    /// Without a CUDA device (this machine class), asking for NCCL is a clear error from libtorch's own
    /// ProcessGroupNCCL constructor (after the one-rank rendezvous); where a GPU is present, a one-rank NCCL group reduces and synchronises a batch norm on it.
    #[test]
    fn nccl_needs_a_cuda_device_and_works_where_there_is_one() {
        let r = rendezvous(free_port(), 0, 1, Duration::from_secs(30));
        if !tch::Cuda::is_available() {
            let e = ProcessGroup::nccl(&r, 0).err().unwrap().to_string();
            assert!(e.contains("NCCL"), "{e}");
            assert!(e.contains("no GPUs found") || e.contains("no NCCL"), "{e}");
            assert!(!e.contains("frame #"), "libtorch's C++ backtrace is left out: {e}");
            return;
        }
        let g = ProcessGroup::nccl(&r, 0).unwrap();
        let d = Device::Cuda(0);
        let a = Tensor::from_slice(&[1.0f32, 2.0]).to_device(d);
        g.all_reduce_sum(&[a.shallow_clone()]).unwrap().wait().unwrap();
        assert_eq!(Vec::<f32>::try_from(a.to_device(Device::Cpu)).unwrap(), vec![1.0, 2.0]);
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Float, d));
        let (w, b) = (Tensor::ones([3], (Kind::Float, d)), Tensor::zeros([3], (Kind::Float, d)));
        let (rm, rv) = (Tensor::zeros([3], (Kind::Float, d)), Tensor::ones([3], (Kind::Float, d)));
        let y = g.sync_batch_norm(&x, &w, &b, &rm, &rv, 0.1, 1e-5).unwrap();
        let want = Tensor::batch_norm(&x, Some(&w), Some(&b), None, None, true, 0.1, 1e-5, false);
        assert!(f64::try_from((y - want).abs().max()).unwrap() < 1e-5);
        g.barrier().unwrap();
    }

    /// A client rank whose MASTER_PORT is held by something that accepts connections but is no c10d store
    /// (here a listener that never answers) fails within its timeout instead of waiting forever.
    #[test]
    fn a_foreign_server_on_the_port_is_a_timeout_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(4).collect();
            std::thread::sleep(Duration::from_secs(8));
            drop(held);
        });
        let t0 = std::time::Instant::now();
        let e = ProcessGroup::gloo(&rendezvous(port, 1, 2, Duration::from_secs(2))).err().unwrap().to_string();
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(2) + JOIN_GRACE + Duration::from_secs(2), "took {took:?}: {e}");
        assert!(e.contains("rank 1 of 2 could not join the group at 127.0.0.1"), "{e}");
        assert!(!e.contains("frame #") && !e.contains("Exception raised from"), "no C++ backtrace: {e}");
        drop(accept);
    }

    #[test]
    fn a_missing_peer_is_a_timeout_that_names_the_rank() {
        let port = free_port();
        let e = ProcessGroup::gloo(&rendezvous(port, 0, 2, Duration::from_millis(1500))).err().unwrap().to_string();
        assert!(e.contains("rank 0 of 2 could not join the group at 127.0.0.1"), "{e}");
        assert!(!e.contains("frame #"), "libtorch's C++ backtrace is left out: {e}");
        let e = ProcessGroup::gloo(&rendezvous(port, 2, 2, Duration::from_secs(1))).err().unwrap().to_string();
        assert!(e.contains("rank 2 is outside a world of 2"), "{e}");
    }
}
