//! The shim's C ABI and the one function that turns its error strings into [`TorchExtError`].

use std::ffi::{c_char, c_int, CStr};

use torch_sys::C_tensor;

use crate::{Result, TorchExtError};

extern "C" {
    pub(crate) fn tx_free_error(e: *mut c_char);
    pub(crate) fn tx_autocast_enter(
        device: c_int,
        dtype: c_int,
        prev_enabled: *mut bool,
        prev_dtype: *mut c_int,
    ) -> *mut c_char;
    pub(crate) fn tx_autocast_exit(device: c_int, prev_enabled: bool, prev_dtype: c_int) -> *mut c_char;
    #[cfg(test)]
    pub(crate) fn tx_autocast_is_enabled(device: c_int, enabled: *mut bool) -> *mut c_char;
    pub(crate) fn tx_channels_last(t: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    #[cfg(test)]
    pub(crate) fn tx_is_channels_last(t: *const C_tensor, yes: *mut bool) -> *mut c_char;
    pub(crate) fn tx_cpu_capability(name: *const c_char, value: *mut c_int) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tx_fused_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        n: c_int,
        step: *const C_tensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: bool,
    ) -> *mut c_char;

    pub(crate) fn tx_clear_grads(ts: *const *const C_tensor, n: c_int) -> *mut c_char;

    pub(crate) fn tx_group_new_gloo(
        r: *const TxRendezvous,
        iface: *const c_char,
        out: *mut *mut TxGroup,
    ) -> *mut c_char;
    #[cfg(tx_nccl)]
    pub(crate) fn tx_group_new_nccl(r: *const TxRendezvous, device: c_int, out: *mut *mut TxGroup) -> *mut c_char;
    pub(crate) fn tx_group_free(g: *mut TxGroup);
    pub(crate) fn tx_work_free(w: *mut TxWork);
    pub(crate) fn tx_allreduce_sum(
        g: *mut TxGroup,
        ts: *const *const C_tensor,
        n: c_int,
        out: *mut *mut TxWork,
    ) -> *mut c_char;
    pub(crate) fn tx_work_wait(w: *mut TxWork) -> *mut c_char;
    pub(crate) fn tx_broadcast(g: *mut TxGroup, ts: *const *const C_tensor, n: c_int, root: c_int) -> *mut c_char;
    pub(crate) fn tx_allgather(
        g: *mut TxGroup,
        input: *const C_tensor,
        outs: *const *const C_tensor,
        world: c_int,
    ) -> *mut c_char;
    #[cfg(test)]
    pub(crate) fn tx_barrier(g: *mut TxGroup) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tx_sync_batch_norm(
        g: *mut TxGroup,
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        running_mean: *const C_tensor,
        running_var: *const C_tensor,
        momentum: f64,
        eps: f64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
}

/// A c10d store + process group, owned by the shim.
#[repr(C)]
pub(crate) struct TxGroup {
    _private: [u8; 0],
}

/// The rendezvous every backend starts with (group.h's `tx_rendezvous`); `host` outlives the call.
#[repr(C)]
pub(crate) struct TxRendezvous {
    pub(crate) host: *const c_char,
    pub(crate) port: c_int,
    pub(crate) rank: c_int,
    pub(crate) world: c_int,
    pub(crate) timeout_ms: i64,
}

/// A collective in flight.
#[repr(C)]
pub(crate) struct TxWork {
    _private: [u8; 0],
}

/// `Ok` when the shim returned no error; else its message (freed here).
pub(crate) fn check(call: &'static str, err: *mut c_char) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string the shim strdup'ed; we own it and free it once.
    let message = unsafe {
        let m = CStr::from_ptr(err).to_string_lossy().into_owned();
        tx_free_error(err);
        m
    };
    Err(TorchExtError { call, message: without_backtrace(&message) })
}

/// A c10 error's message without the C++ backtrace libtorch appends (`Exception raised from …`, `frame #N`):
/// a user needs the first lines, not 25 lines of symbols.
fn without_backtrace(message: &str) -> String {
    let kept: Vec<&str> = message
        .lines()
        .take_while(|l| !l.trim_start().starts_with("Exception raised from") && !l.trim_start().starts_with("frame #"))
        .collect();
    kept.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backtrace_is_cut() {
        let m = "Connection reset by peer\nException raised from recvBytes at x.cpp:1 (most recent call first):\nframe #0: c10::Error";
        assert_eq!(super::without_backtrace(m), "Connection reset by peer");
        assert_eq!(super::without_backtrace("one\ntwo\n"), "one\ntwo");
    }
}
