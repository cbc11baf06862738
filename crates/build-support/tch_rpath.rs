//! Build script shared by the crates that link libtorch (embed-text, train).
//!
//! torch-sys does not give the final binaries an rpath, so they would need LD_LIBRARY_PATH at run time
//! (a verified toolchain fact). Crates depending on torch-sys *directly* receive its lib dir as `DEP_TCH_LIBTORCH_LIB`; we
//! turn it into an rpath. The linker also drops libtorch_cuda.so as "unused" (as-needed), which hides CUDA
//! from Rust even on a GPU machine (tch issues #980, #907), so it is forced in when present. The libtorch
//! version (from the wheel's `version.py`) is baked in for `train doctor`.

use std::path::Path;

pub fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: binaries will need LD_LIBRARY_PATH");
        return;
    };
    let lib_dir = Path::new(&lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let version_py = lib_dir.join("..").join("version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("__version__"))
                .and_then(|l| l.split(['\'', '"']).nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SITFER_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=SITFER_LIBTORCH_LIB={lib}");
}
