//! Compiles the C++ shim against the headers of the libtorch that torch-sys links (the torch wheel's), with
//! the same C++ standard and ABI flags torch-sys uses for its own shim, then gives the crate's tests the
//! libtorch rpath every tch crate needs. The NCCL process group (csrc/dist_nccl.cpp) is compiled only where the
//! CUDA host headers its c10d header includes are found beside the wheel; the crate then gets `cfg(tx_nccl)`.

#[path = "../build-support/tch_rpath.rs"]
mod tch_rpath;

use std::path::{Path, PathBuf};

/// The include folders NCCL's c10d header needs, from the wheel's site-packages (`torch/lib/../..`): the CUDA
/// runtime's and CCCL's headers (`nvidia/cu*/include`, with `nv/target`), NCCL's (`nvidia/nccl/include`), and
/// the `crt/` host headers, which the runtime package leaves out and Triton (a dependency of the CUDA torch
/// wheel) ships. `None` when any is missing (a CPU-only wheel, or `make setup` not run).
fn cuda_includes(torch_lib: &Path) -> Option<Vec<PathBuf>> {
    let site = torch_lib.canonicalize().ok()?.parent()?.parent()?.to_path_buf();
    let nvidia = site.join("nvidia");
    let triton = site.join("triton/backends/nvidia/include");
    // Headers installed later (make setup) must reach the next build. Only folders that exist: Cargo takes a
    // missing path as always changed, and would rebuild the shim on every build of a CPU-only wheel.
    for watched in [&nvidia, &triton] {
        if watched.is_dir() {
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
    let cuda = std::fs::read_dir(&nvidia)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("include")))
        .find(|inc| inc.join("cuda_runtime_api.h").is_file() && inc.join("nv/target").is_file())?;
    let nccl = nvidia.join("nccl/include");
    let crt = [cuda.clone(), triton].into_iter().find(|inc| inc.join("crt/host_config.h").is_file())?;
    nccl.join("nccl.h").is_file().then(|| vec![cuda, nccl, crt])
}

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo::rustc-check-cfg=cfg(tx_nccl)");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "DEP_TCH_LIBTORCH_LIB is unset: torch-sys did not find libtorch (run `make setup`, which links .libtorch)",
    ));
    let include = lib.parent().map(|root| root.join("include")).expect("libtorch's lib dir has a parent");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let cuda = cuda_includes(&lib);
    let mut build = cc::Build::new();
    build.cpp(true).file("csrc/torch_ext.cpp").file("csrc/dist.cpp").file("csrc/optim.cpp");
    if let Some(dirs) = &cuda {
        build.file("csrc/dist_nccl.cpp").includes(dirs);
        println!("cargo:rustc-cfg=tx_nccl");
    } else {
        println!("cargo:warning=torch-ext: no CUDA host headers beside the torch wheel; NCCL left out (Gloo only)");
    }
    build
        .include(&include)
        // Gloo's headers, which the wheel does not ship (see csrc/vendor/gloo/README.md).
        .include("csrc/vendor")
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false)
        // No debug info: libtorch's headers make it most of the shim's compile time and object size, and a
        // backtrace through the shim names its functions without it.
        .debug(false)
        .compile("torch_ext");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if cuda.is_some() {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    tch_rpath::main();
}
