//! Autocast regions: inside one, libtorch runs matrix products and convolutions in a lower precision (bf16 or
//! fp16) and keeps the ops on its per-device fp32 list in fp32 — on the CPU as on CUDA. Callers that need fp32
//! (losses, fusion, the memory bank) cast the region's outputs back themselves. tch
//! only toggles CUDA's fp16 autocast; this module takes any device and dtype. The region is left by a guard,
//! so a panic inside it does not leave autocast on for the thread.

use std::ffi::c_int;

use tch::{Device, Kind};

use crate::ffi::{check, tx_autocast_enter, tx_autocast_exit};
use crate::{Result, TorchExtError};

/// c10::ScalarType codes of the dtypes autocast can lower to.
fn scalar_type(kind: Kind) -> Result<c_int> {
    match kind {
        Kind::Half => Ok(5),
        Kind::BFloat16 => Ok(15),
        other => Err(TorchExtError {
            call: "autocast",
            message: format!("autocast lowers to Half or BFloat16, not {other:?}"),
        }),
    }
}

fn device_code(device: Device) -> Result<c_int> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        other => Err(TorchExtError { call: "autocast", message: format!("no autocast for device {other:?}") }),
    }
}

struct Region {
    device: c_int,
    prev_enabled: bool,
    prev_dtype: c_int,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: plain values in; restores the state saved on entry.
        let err = unsafe { tx_autocast_exit(self.device, self.prev_enabled, self.prev_dtype) };
        if let Err(e) = check("tx_autocast_exit", err) {
            eprintln!("warning: leaving autocast: {e}");
        }
    }
}

/// Runs `f` with autocast on `device` in `kind` (`Kind::BFloat16` or `Kind::Half`); `None` runs it as is.
pub fn autocast<T>(device: Device, kind: Option<Kind>, f: impl FnOnce() -> T) -> Result<T> {
    let Some(kind) = kind else { return Ok(f()) };
    let (code, dtype) = (device_code(device)?, scalar_type(kind)?);
    let (mut prev_enabled, mut prev_dtype) = (false, 0);
    // SAFETY: the out-pointers are valid locals.
    check("tx_autocast_enter", unsafe { tx_autocast_enter(code, dtype, &mut prev_enabled, &mut prev_dtype) })?;
    let _region = Region { device: code, prev_enabled, prev_dtype };
    Ok(f())
}

/// Whether autocast is on for `device` in this thread.
#[cfg(test)]
pub(crate) fn is_enabled(device: Device) -> Result<bool> {
    let mut on = false;
    // SAFETY: the out-pointer is a valid local.
    check("tx_autocast_is_enabled", unsafe { crate::ffi::tx_autocast_is_enabled(device_code(device)?, &mut on) })?;
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn cpu_bf16_region_lowers_matmul_and_ends_cleanly() {
        let a = Tensor::ones([4, 3], (Kind::Float, Device::Cpu));
        let b = Tensor::ones([3, 2], (Kind::Float, Device::Cpu));
        let prod = autocast(Device::Cpu, Some(Kind::BFloat16), || {
            assert!(is_enabled(Device::Cpu).unwrap());
            a.matmul(&b)
        })
        .unwrap();
        assert_eq!(prod.kind(), Kind::BFloat16);
        assert_eq!(Vec::<f32>::try_from(prod.to_kind(Kind::Float).flatten(0, -1)).unwrap(), vec![3.0; 8]);
        assert!(!is_enabled(Device::Cpu).unwrap());
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
    }

    #[test]
    fn none_runs_in_fp32_and_bad_kinds_are_refused() {
        let a = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(autocast(Device::Cpu, None, || a.matmul(&a).kind()).unwrap(), Kind::Float);
        let e = autocast(Device::Cpu, Some(Kind::Float), || ()).unwrap_err();
        assert!(e.to_string().contains("Half or BFloat16"), "{e}");
    }

    #[test]
    fn a_panic_inside_the_region_still_leaves_it() {
        let r = std::panic::catch_unwind(|| autocast(Device::Cpu, Some(Kind::BFloat16), || panic!("inside")));
        assert!(r.is_err());
        assert!(!is_enabled(Device::Cpu).unwrap());
    }
}
