//! c10d, the engine under PyTorch's distributed training: a TCP store where the ranks meet and a Gloo process
//! group over it (CPU tensors), with the collectives a data-parallel trainer needs — all-reduce (asynchronous,
//! so it can overlap other work), broadcast, all-gather, barrier. Every call is bounded by the group's
//! timeout; a missing or dead peer comes back as an error naming this rank, never as a hang.

use std::ffi::{c_int, CString};
use std::time::Duration;

use tch::Tensor;
use torch_sys::C_tensor;

use crate::ffi::{self, check, TxGroup, TxWork};
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

/// A Gloo process group. Collectives must be called in the same order on every rank.
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
    /// Joins the group: rank 0 serves the store, every rank waits (up to the timeout) for all the others.
    pub fn gloo(r: &Rendezvous) -> Result<Self> {
        if r.world == 0 || r.rank >= r.world {
            return Err(TorchExtError {
                call: "tx_group_new_gloo",
                message: format!("rank {} is outside a world of {}", r.rank, r.world),
            });
        }
        let host = c_string("tx_group_new_gloo", &r.host)?;
        let iface = c_string("tx_group_new_gloo", r.interface.as_deref().unwrap_or(""))?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: valid C strings and out-pointer; the shim owns what it returns until tx_group_free.
        let err = unsafe {
            ffi::tx_group_new_gloo(
                host.as_ptr(),
                c_int::from(r.port),
                r.rank as c_int,
                r.world as c_int,
                r.timeout.as_millis() as i64,
                iface.as_ptr(),
                &mut ptr,
            )
        };
        check("tx_group_new_gloo", err).map_err(|e| TorchExtError {
            message: format!(
                "rank {} of {} could not join the group at {}:{} within {:?}: {}",
                r.rank, r.world, r.host, r.port, r.timeout, e.message
            ),
            ..e
        })?;
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

    pub fn barrier(&self) -> Result<()> {
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
