//! `train doctor`: reports what the trainer would run on and what it can find, so a user can tell a
//! toolchain problem (libtorch, CUDA, text model) from a data problem before a long run.
//! It only inspects; it never fixes anything.

use std::path::Path;

use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DataRoot {
    dataset: &'static str,
    path: String,
    present: bool,
    /// Env var that overrides the default root.
    env: &'static str,
}

#[derive(Serialize)]
struct Report {
    train_version: &'static str,
    libtorch_version: &'static str,
    libtorch_lib: &'static str,
    cuda_available: bool,
    cuda_device_count: i64,
    cuda_devices: Vec<String>,
    cudnn_available: bool,
    cudnn_version: Option<i64>,
    cpu_threads: i32,
    mkldnn: bool,
    /// AVX-512 BF16 or AMX: whether `run.precision = "bf16"` is native on this CPU.
    cpu_native_bf16: bool,
    text_model: String,
    text_model_present: bool,
    face_model: String,
    face_model_present: bool,
    data_roots: Vec<DataRoot>,
}

fn data_root(dataset: &'static str, env: &'static str) -> DataRoot {
    let path = std::env::var(env).unwrap_or_else(|_| format!("data/raw/{dataset}"));
    let present = Path::new(&path).is_dir();
    DataRoot { dataset, path, present, env }
}

/// GPU names come from nvidia-smi when it is there: libtorch's C API as wrapped by tch has no device-name call.
fn cuda_device_names() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let cuda = tch::Cuda::is_available();
    let text_model = tch_common::models::text_model_dir();
    let face_model = tch_common::models::face_model_dir().join(train::model::dlib::convert::DAT_FILE);
    let mut data_roots = vec![
        data_root("ferplus", "FERPLUS_DIR"),
        data_root("rafdb", "RAFDB_DIR"),
        data_root("affectnet", "AFFECTNET_DIR"),
    ];
    // The real FERPlus copy that tests and benchmarks read (they skip loudly without it).
    let shared = std::env::var("SITFER_FERPLUS_DIR").unwrap_or_else(|_| "(SITFER_FERPLUS_DIR unset)".into());
    data_roots.push(DataRoot {
        dataset: "ferplus (tests)",
        present: Path::new(&shared).is_dir(),
        path: shared,
        env: "SITFER_FERPLUS_DIR",
    });
    let report = Report {
        train_version: env!("CARGO_PKG_VERSION"),
        libtorch_version: env!("SITFER_LIBTORCH_VERSION"),
        libtorch_lib: env!("SITFER_LIBTORCH_LIB"),
        cuda_available: cuda,
        cuda_device_count: if cuda { tch::Cuda::device_count() } else { 0 },
        cuda_devices: if cuda { cuda_device_names() } else { Vec::new() },
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cudnn_version: tch::Cuda::cudnn_is_available().then(tch::utils::version_cudnn),
        cpu_threads: tch::get_num_threads(),
        mkldnn: tch::utils::has_mkldnn(),
        cpu_native_bf16: torch_ext::cpu::has_native_bf16()?,
        text_model_present: text_model.join("model.safetensors").is_file()
            && text_model.join("tokenizer.json").is_file(),
        text_model: text_model.display().to_string(),
        face_model: face_model.display().to_string(),
        face_model_present: face_model.is_file(),
        data_roots,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("train {}", report.train_version);
    println!("  libtorch        {} ({})", report.libtorch_version, report.libtorch_lib);
    println!("  CUDA            {} ({} device(s))", yes(report.cuda_available), report.cuda_device_count);
    for d in &report.cuda_devices {
        println!("                  {d}");
    }
    match report.cudnn_version {
        Some(v) => println!("  cuDNN           yes (version {v})"),
        None => println!("  cuDNN           no"),
    }
    println!("  CPU threads     {} (oneDNN {})", report.cpu_threads, yes(report.mkldnn));
    println!(
        "  CPU bf16        {}",
        if report.cpu_native_bf16 { "native (run.precision = \"bf16\" pays off)" } else { "emulated (keep fp32)" }
    );
    let model_state = if report.text_model_present { "present" } else { "MISSING: run `make setup`" };
    println!("  text model      {} [{model_state}]", report.text_model);
    let face_state = if report.face_model_present { "present" } else { "MISSING: run `make setup`" };
    println!("  face model      {} [{face_state}]", report.face_model);
    println!("  data roots");
    for r in &report.data_roots {
        let state = if r.present { "present" } else { "absent" };
        println!("    {:<18} {:<40} {state:<8} (override: {})", r.dataset, r.path, r.env);
    }
    Ok(())
}
