//! This CPU's capabilities as libtorch detects them, for choosing a precision: bf16 is native on CPUs with
//! AVX-512 BF16 or AMX; elsewhere libtorch emulates it and it is usually slower than fp32.

use std::ffi::{c_int, CString};

use crate::ffi::{check, tx_cpu_capability};
use crate::{Result, TorchExtError};

/// One capability by libtorch's name for it (`"avx2"`, `"avx512_bf16"`, `"amx_bf16"`, ...); `None` when this
/// libtorch does not know the name.
pub(crate) fn capability(name: &str) -> Result<Option<bool>> {
    let c = CString::new(name)
        .map_err(|_| TorchExtError { call: "tx_cpu_capability", message: format!("bad name {name:?}") })?;
    let mut v: c_int = -1;
    // SAFETY: a valid C string and out-pointer.
    check("tx_cpu_capability", unsafe { tx_cpu_capability(c.as_ptr(), &mut v) })?;
    Ok(match v {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    })
}

/// Whether bf16 matrix math is native here (AVX-512 BF16 or AMX-BF16).
pub fn has_native_bf16() -> Result<bool> {
    Ok(capability("avx512_bf16")?.unwrap_or(false) || capability("amx_bf16")?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_agree_with_the_kernel_and_unknown_names_are_none() {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        if flags.contains("x86") || flags.contains("GenuineIntel") || flags.contains("AuthenticAMD") {
            let avx2 = flags.split_whitespace().any(|f| f == "avx2");
            assert_eq!(capability("avx2").unwrap(), Some(avx2));
            let bf16 = flags.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16");
            assert_eq!(has_native_bf16().unwrap(), bf16);
        }
        assert_eq!(capability("no_such_capability").unwrap(), None);
    }
}
