//! Reading tensors back to the host during training. On a GPU every read waits for the device to finish all
//! queued work, so the step reads nothing: its loss terms stay on the device ([`crate::epoch_stats::Pending`])
//! and come back in one read at a log point (a progress-bar refresh, a log line, a checkpoint, the epoch
//! end). Every read the training loop makes goes through [`values`], which counts them per thread, so a test
//! can check that the steps between log points make none.

use std::cell::Cell;

use tch::{Device, Kind, Tensor};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// The tensor's elements as f64, flattened, in one device-to-host copy (counted).
pub(crate) fn values(t: &Tensor) -> Vec<f64> {
    READS.with(|r| r.set(r.get() + 1));
    let flat = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1);
    Vec::<f64>::try_from(&flat).unwrap_or_else(|_| vec![f64::NAN; flat.numel()])
}

/// Reads made on this thread so far.
pub fn count() -> u64 {
    READS.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_counted_per_call_not_per_element() {
        let before = count();
        let v = values(&Tensor::from_slice(&[1.5f32, -2.0, 3.25]).reshape([3, 1]));
        assert_eq!(v, vec![1.5, -2.0, 3.25]);
        assert_eq!(count() - before, 1);
    }
}
