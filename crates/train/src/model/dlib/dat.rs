//! Reads dlib's serialised face-recognition network (`dlib_face_recognition_resnet_model_v1.dat`) into plain
//! arrays: the 29 convolutions (filters in PyTorch's OIHW order, biases, stride, padding), the 29 per-channel
//! affines that follow them (dlib's `affine_`, a batch norm folded into `scale`, `shift`) and the final
//! 256 → 128 linear map. Nothing here knows tch; [`super::convert`] turns the result into named tensors.
//!
//! The format is read by `face::dlib_format` (dlib's integers, tensors and named records; the `con_4` record
//! shared with the face detector). Each layer record starts with its name. The records this
//! reader needs are found by their names, and each is then read field by field, so the bytes of a tensor it has
//! read are never searched for a name; the records it skips (ReLU, pooling, additions, the loss) hold no
//! weights. The counts and shapes are then checked against the architecture, so a different or damaged file is
//! refused with what differed rather than loaded wrong.

/// One `con_4` record (dlib's own layout, read by the face crate's reader for every dlib network).
pub(crate) use face::dlib_format::ConvRecord as Conv;

/// One `affine_` record: `y = x · scale[c] + shift[c]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Affine {
    pub(crate) scale: Vec<f32>,
    pub(crate) shift: Vec<f32>,
}

/// The weights of the whole file, in the order of the network from its input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DatWeights {
    pub(crate) convs: Vec<Conv>,
    pub(crate) affines: Vec<Affine>,
    /// The identity embedding `[outputs][inputs]` (already transposed from dlib's `y = x·W`).
    pub(crate) embed: Vec<f32>,
    pub(crate) embed_outputs: usize,
    pub(crate) embed_inputs: usize,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DatError {
    #[error("{path}: byte {offset}: {what}")]
    Format { path: String, offset: usize, what: String },
    #[error("{path}: not dlib's face-recognition ResNet v1: {what}")]
    Architecture { path: String, what: String },
}

use face::dlib_format::{conv_record, Reader};

const CONV: &str = "con_4";
const AFFINE: &str = "affine_";
const FC: &str = "fc_2";

fn affine(r: &mut Reader) -> Result<Affine, (usize, String)> {
    let at = r.pos();
    let (_, params) = r.tensor()?;
    if params.is_empty() || params.len() % 2 != 0 {
        return Err((at, format!("affine with {} parameters, expected 2 per channel", params.len())));
    }
    let c = params.len() / 2;
    Ok(Affine { scale: params[..c].to_vec(), shift: params[c..].to_vec() })
}

/// `(outputs, inputs, W as [outputs][inputs])` of an `fc_2` record (dlib stores `[inputs][outputs]`).
fn fc(r: &mut Reader) -> Result<(usize, usize, Vec<f32>), (usize, String)> {
    let at = r.pos();
    let outputs = r.count("fc outputs")?;
    let inputs = r.count("fc inputs")?;
    let (dims, w) = r.tensor()?;
    if dims[0] != inputs || dims[1] != outputs || w.len() != inputs * outputs {
        return Err((at, format!("fc of {outputs} outputs and {inputs} inputs holds a tensor of shape {dims:?}")));
    }
    let mut t = vec![0f32; w.len()];
    for i in 0..inputs {
        for o in 0..outputs {
            t[o * inputs + i] = w[i * outputs + o];
        }
    }
    Ok((outputs, inputs, t))
}

/// Parses `bytes` (the file at `path`, named in errors) and checks it against [`super::ARCH`].
pub(crate) fn parse(path: &str, bytes: &[u8]) -> Result<DatWeights, DatError> {
    let mut r = Reader::new(bytes);
    let (mut convs, mut affines, mut embed) = (Vec::new(), Vec::new(), None);
    let format = |(offset, what): (usize, String)| DatError::Format { path: path.to_string(), offset, what };
    while let Some(name) = r.next_record(&[CONV, AFFINE, FC]) {
        match name {
            CONV => convs.push(conv_record(&mut r).map_err(format)?),
            AFFINE => affines.push(affine(&mut r).map_err(format)?),
            _ => {
                if embed.is_some() {
                    return Err(format(r.fail("a second fc_2 record")));
                }
                embed = Some(fc(&mut r).map_err(format)?);
            }
        }
    }
    let arch = |what: String| DatError::Architecture { path: path.to_string(), what };
    let (embed_outputs, embed_inputs, embed) =
        embed.ok_or_else(|| arch("no fc_2 (identity embedding) record".into()))?;
    let expected = super::conv_shapes();
    if convs.len() != expected.len() || affines.len() != expected.len() {
        return Err(arch(format!(
            "{} convolutions and {} affines, expected {} of each",
            convs.len(),
            affines.len(),
            expected.len()
        )));
    }
    for (i, ((c, a), e)) in convs.iter().zip(&affines).zip(&expected).enumerate() {
        let got = super::ConvShape { cin: c.cin, cout: c.cout, kernel: c.kernel, stride: c.stride, padding: c.padding };
        if got != *e {
            return Err(arch(format!("convolution {i} is {got:?}, expected {e:?}")));
        }
        if a.scale.len() != c.cout {
            return Err(arch(format!("affine {i} has {} channels, its convolution {}", a.scale.len(), c.cout)));
        }
    }
    if (embed_outputs, embed_inputs) != (super::EMBED_DIM, super::FULL_CHANNELS) {
        return Err(arch(format!("fc_2 maps {embed_inputs} -> {embed_outputs}, expected 256 -> 128")));
    }
    Ok(DatWeights { convs, affines, embed, embed_outputs, embed_inputs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mag = v.unsigned_abs();
        let bytes: Vec<u8> =
            mag.to_le_bytes().into_iter().take((64 - mag.leading_zeros() as usize).div_ceil(8)).collect();
        let mut out = vec![bytes.len() as u8 | if v < 0 { 0x80 } else { 0 }];
        out.extend(bytes);
        out
    }

    #[test]
    fn dlib_integers() {
        // Hand-encoded: 4736 = 0x1280 → [0x02, 0x80, 0x12]; 0 → [0x00]; -3 → [0x81, 0x03].
        let bytes = [0x02, 0x80, 0x12, 0x00, 0x81, 0x03];
        let mut r = Reader::new(&bytes);
        assert_eq!((r.int().unwrap(), r.int().unwrap(), r.int().unwrap()), (4736, 0, -3));
        assert_eq!(int(4736), vec![0x02, 0x80, 0x12]);
        assert!(r.int().unwrap_err().1.contains("ends inside"));
    }

    #[test]
    fn a_conv_record_splits_filters_and_biases() {
        let mut b = vec![0x01, 5];
        b.extend(b"con_4");
        // tensor: version 2, dims (2·1·1·1 + 2, 1, 1, 1), floats
        for v in [2, 4, 1, 1, 1] {
            b.extend(int(v));
        }
        for f in [1.0f32, 2.0, 0.5, -0.5] {
            b.extend(f.to_le_bytes());
        }
        for v in [2, 1, 1, 1, 1, 0, 0] {
            b.extend(int(v));
        }
        let mut r = Reader::new(&b);
        assert_eq!(r.next_record(&[CONV, AFFINE]), Some(CONV));
        let c = conv_record(&mut r).unwrap();
        assert_eq!((c.cout, c.cin, c.kernel, c.stride, c.padding), (2, 1, 1, 1, 0));
        assert_eq!((c.weight, c.bias), (vec![1.0, 2.0], vec![0.5, -0.5]));
        assert_eq!(r.next_record(&[CONV, AFFINE]), None);
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_with_where() {
        let e = parse("x.dat", b"\x01\x05con_4\x01\x02\x02\x80\x12").unwrap_err().to_string();
        assert!(e.starts_with("x.dat: byte 12:") && e.contains("ends inside"), "{e}");
        let e = parse("y.dat", b"nothing dlib here").unwrap_err().to_string();
        assert!(e.contains("y.dat: not dlib's face-recognition ResNet v1: no fc_2"), "{e}");
    }
}
