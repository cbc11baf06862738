//! `--device auto|cpu|cuda[:N]` into a tch device, refusing CUDA where libtorch cannot see it.

use anyhow::bail;
use tch::Device;

pub fn parse(spec: &str) -> anyhow::Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let device = match spec.as_str() {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => bail!("--device {spec:?}: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = device {
        let count = tch::Cuda::device_count() as usize;
        if n >= count {
            bail!(
                "--device cuda:{n}: libtorch sees {count} CUDA device(s) (run `cargo run -p train -- doctor` to see why)"
            );
        }
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_refuses() {
        assert_eq!(super::parse("cpu").unwrap(), tch::Device::Cpu);
        assert!(super::parse("tpu").unwrap_err().to_string().contains("expected auto"));
        if !tch::Cuda::is_available() {
            assert!(super::parse("cuda:0").is_err());
            assert_eq!(super::parse("auto").unwrap(), tch::Device::Cpu);
        }
    }
}
