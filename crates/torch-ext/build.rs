//! Compiles the C++ shim against the headers of the libtorch that torch-sys links (the torch wheel's), with
//! the same C++ standard and ABI flags torch-sys uses for its own shim, then gives the crate's tests the
//! libtorch rpath every tch crate needs.

#[path = "../build-support/tch_rpath.rs"]
mod tch_rpath;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "DEP_TCH_LIBTORCH_LIB is unset: torch-sys did not find libtorch (run `make setup`, which links .libtorch)",
    ));
    let include = lib.parent().map(|root| root.join("include")).expect("libtorch's lib dir has a parent");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_ext.cpp")
        .file("csrc/dist.cpp")
        .file("csrc/optim.cpp")
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
        .compile("torch_ext");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    tch_rpath::main();
}
