//! Turns augmented `u8` images into the model's input tensor: `[B, 3, S, S]` float, grey replicated to three
//! channels, normalised with the ImageNet mean and standard deviation (docs/method.md). Built on the training
//! thread (tensors are not `Sync`); the per-pixel work before it runs on rayon threads.

use std::borrow::Borrow;

use rayon::prelude::*;
use tch::{Device, Tensor};

use super::augment::Img;

pub(crate) const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub(crate) const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A pixel value as the model reads it in channel `ch`: scaled to [0, 1], minus the mean, over the deviation.
#[inline]
pub(crate) fn normalised(v: u8, ch: usize) -> f32 {
    (f32::from(v) / 255.0 - MEAN[ch]) / STD[ch]
}

/// Planar, normalised `3 × S × S` floats of one image.
pub fn planar(img: &Img) -> Vec<f32> {
    let n = img.w * img.h;
    let mut out = vec![0f32; 3 * n];
    for ch in 0..3 {
        let src = if img.c == 1 { 0 } else { ch };
        for i in 0..n {
            out[ch * n + i] = normalised(img.data[i * img.c + src], ch);
        }
    }
    out
}

/// The batch of `images`, owned or borrowed (a sweep's subset borrows the unlabeled set's faces).
pub fn to_tensor<I: Borrow<Img> + Sync>(images: &[I], device: Device) -> Tensor {
    let (w, h) = images.first().map(|i| (i.borrow().w, i.borrow().h)).unwrap_or((1, 1));
    let flat: Vec<f32> = images.par_iter().flat_map_iter(|i| planar(i.borrow())).collect();
    Tensor::from_slice(&flat).view([images.len() as i64, 3, h as i64, w as i64]).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_is_replicated_and_normalised() {
        let img = Img { w: 1, h: 1, c: 1, data: vec![255] };
        let t = to_tensor(&[img], Device::Cpu);
        assert_eq!(t.size(), vec![1, 3, 1, 1]);
        let v: Vec<f32> = Vec::try_from(&t.flatten(0, -1)).unwrap();
        for ch in 0..3 {
            assert!((v[ch] - (1.0 - MEAN[ch]) / STD[ch]).abs() < 1e-6);
        }
    }
}
