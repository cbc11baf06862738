//! dlib's serialisation format, the parts its landmark model uses (little-endian throughout):
//! - an integer is one control byte (low nibble: how many bytes follow, bit 7: negative) and then that many
//!   bytes of magnitude;
//! - a float is two integers, a mantissa and an exponent, worth `mantissa · 2^exponent` (exponents 32000,
//!   32001 and 32002 mean +∞, −∞ and NaN);
//! - a `std::vector` is its length as an integer, then its elements;
//! - a `matrix` is `−rows`, `−columns` (negated in dlib's current format) and its elements row by row;
//! - a string is its length as an integer, then its bytes; a network layer's record starts with its name;
//! - a network tensor is version 2, four dimensions, then raw little-endian `f32`s (not float pairs).
//!
//! Every error names the byte offset where reading failed.

/// Reading failed at byte `.0` because of `.1`.
pub type Failure = (usize, String);

pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const IS_INF: i64 = 32000;
const IS_NINF: i64 = 32001;
const IS_NAN: i64 = 32002;

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// The byte offset reading has reached.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn fail(&self, what: impl Into<String>) -> Failure {
        (self.pos, what.into())
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub fn int(&mut self) -> Result<i64, Failure> {
        let control = *self.bytes.get(self.pos).ok_or_else(|| self.fail("file ends inside an integer"))?;
        let n = usize::from(control & 0x0f);
        if n > 8 || control & 0x70 != 0 {
            return Err(self.fail(format!("byte {control:#04x} is not an integer's control byte")));
        }
        let body =
            self.bytes.get(self.pos + 1..self.pos + 1 + n).ok_or_else(|| self.fail("file ends inside an integer"))?;
        let v = body.iter().enumerate().fold(0u64, |v, (i, b)| v | u64::from(*b) << (8 * i));
        let v = i64::try_from(v).map_err(|_| self.fail("integer out of range"))?;
        self.pos += 1 + n;
        Ok(if control & 0x80 != 0 { -v } else { v })
    }

    /// A non-negative integer that counts or indexes something (`what`, for the message).
    pub fn count(&mut self, what: &str) -> Result<usize, Failure> {
        let at = self.pos;
        let v = self.int()?;
        usize::try_from(v).map_err(|_| (at, format!("{what} is {v}, expected a non-negative number")))
    }

    /// A float as dlib writes it: the pair [`Self::double`] reads, narrowed to `f32` (exact for every value
    /// dlib wrote from an `f32`: its mantissa then has at most 24 bits).
    pub fn float(&mut self) -> Result<f32, Failure> {
        Ok(self.double()? as f32)
    }

    /// A double as dlib writes it, converted as dlib converts it: `ldexp((double) mantissa, exponent)`.
    pub fn double(&mut self) -> Result<f64, Failure> {
        let mantissa = self.int()?;
        let exponent = self.int()?;
        Ok(match exponent {
            IS_INF => f64::INFINITY,
            IS_NINF => f64::NEG_INFINITY,
            IS_NAN => f64::NAN,
            e => mantissa as f64 * 2f64.powi(e.clamp(-2000, 2000) as i32),
        })
    }

    pub fn string(&mut self) -> Result<String, Failure> {
        let n = self.count("a string's length")?;
        let bytes = self.bytes.get(self.pos..self.pos + n).ok_or_else(|| self.fail("file ends inside a string"))?;
        self.pos += n;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.fail("a string that is not UTF-8"))
    }

    /// A network tensor: its four dimensions and `f32`s.
    pub fn tensor(&mut self) -> Result<([usize; 4], Vec<f32>), Failure> {
        let at = self.pos;
        let version = self.int()?;
        if version != 2 {
            return Err((at, format!("tensor version {version}, expected 2")));
        }
        let mut dims = [0usize; 4];
        for d in &mut dims {
            *d = self.count("a tensor dimension")?;
        }
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| self.fail("tensor too large"))?;
        let end = n.checked_mul(4).and_then(|b| b.checked_add(self.pos)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.fail(format!("file ends inside a tensor of {n} floats")))?;
        let v =
            self.bytes[self.pos..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        self.pos = end;
        Ok((dims, v))
    }

    /// Moves to just after the next record named one of `names` (its name serialised as a string); `None`
    /// when none follows. The search starts after the fields already read, so it runs only over records the
    /// caller skips; a chance match there would fail the caller's architecture check, not load wrong.
    pub fn next_record(&mut self, names: &[&'static str]) -> Option<&'static str> {
        let rest = &self.bytes[self.pos..];
        let found = names
            .iter()
            .filter_map(|name| {
                let mut marker = vec![0x01, name.len() as u8];
                marker.extend_from_slice(name.as_bytes());
                rest.windows(marker.len()).position(|w| w == marker.as_slice()).map(|p| (p, marker.len(), *name))
            })
            .min_by_key(|(p, _, _)| *p)?;
        self.pos += found.0 + found.1;
        Some(found.2)
    }

    /// A `std::vector` of `what`s, each read by `item`.
    pub fn vec<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<T, Failure>,
    ) -> Result<Vec<T>, Failure> {
        let n = self.count(&format!("the length of a vector of {what}"))?;
        // Every element takes at least one byte: a length beyond the file is damage, not a huge allocation.
        if n > self.bytes.len() - self.pos {
            return Err(self.fail(format!("a vector of {n} {what} is longer than the rest of the file")));
        }
        (0..n).map(|_| item(self)).collect()
    }

    /// A column vector (`matrix<float,0,1>`) of floats.
    pub fn column(&mut self) -> Result<Vec<f32>, Failure> {
        let at = self.pos;
        let (rows, cols) = (self.int()?, self.int()?);
        if rows > 0 || cols != -1 {
            return Err((at, format!("a matrix of {} × {}, expected a column vector", -rows, -cols)));
        }
        let n = usize::try_from(-rows).map_err(|_| (at, "matrix rows out of range".to_string()))?;
        if n > self.bytes.len() - self.pos {
            return Err((at, format!("a column of {n} floats is longer than the rest of the file")));
        }
        (0..n).map(|_| self.float()).collect()
    }
}

/// A `con_` record's weights (the same in every dlib network): `weight` is `[cout, cin, k, k]` flattened
/// (PyTorch's OIHW), `bias` has `cout` values.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvRecord {
    pub cout: usize,
    pub cin: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The fields of a `con_4` record after its name: the parameter tensor (filters, then biases), the filter
/// count, kernel size, stride and padding; square kernels, strides and paddings only.
pub fn conv_record(r: &mut Reader) -> Result<ConvRecord, Failure> {
    let at = r.pos;
    let (_, params) = r.tensor()?;
    let cout = r.count("num_filters")?;
    let (kh, kw) = (r.count("kernel rows")?, r.count("kernel columns")?);
    let (sy, sx) = (r.count("stride y")?, r.count("stride x")?);
    let (py, px) = (r.count("padding y")?, r.count("padding x")?);
    if kh != kw || sy != sx || py != px || cout == 0 || kh == 0 {
        return Err((
            at,
            format!("convolution {cout} filters {kh}x{kw} stride {sy}/{sx} padding {py}/{px}: expected square"),
        ));
    }
    let per_filter = params.len().saturating_sub(cout) / (cout * kh * kw);
    if per_filter * cout * kh * kw + cout != params.len() {
        return Err((
            at,
            format!("{} parameters do not split into {cout} filters of {kh}x{kw} plus biases", params.len()),
        ));
    }
    let split = params.len() - cout;
    Ok(ConvRecord {
        cout,
        cin: per_filter,
        kernel: kh,
        stride: sy,
        padding: py,
        weight: params[..split].to_vec(),
        bias: params[split..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_floats_vectors_and_columns_by_hand() {
        // 300 = 0x012c: control 0x02 then 2c 01; −5: control 0x81 then 05.
        let mut r = Reader::new(&[0x02, 0x2c, 0x01, 0x81, 0x05, 0x00]);
        assert_eq!((r.int().unwrap(), r.int().unwrap(), r.int().unwrap()), (300, -5, 0));
        // 0.75 = 3 · 2^−2; −1.5 = −3 · 2^−1; +∞.
        let mut r = Reader::new(&[0x01, 0x03, 0x81, 0x02, 0x81, 0x03, 0x81, 0x01, 0x00, 0x02, 0x00, 0x7d]);
        assert_eq!((r.float().unwrap(), r.float().unwrap(), r.float().unwrap()), (0.75, -1.5, f32::INFINITY));
        // A vector of two integers; a 2 × 1 column [1.0, 2.0] (1 · 2^0, 1 · 2^1).
        let mut r = Reader::new(&[0x01, 0x02, 0x01, 0x07, 0x01, 0x09]);
        assert_eq!(r.vec("ints", Reader::int).unwrap(), vec![7, 9]);
        let mut r = Reader::new(&[0x81, 0x02, 0x81, 0x01, 0x01, 0x01, 0x00, 0x01, 0x01, 0x01, 0x01]);
        assert_eq!(r.column().unwrap(), vec![1.0, 2.0]);
        assert!(r.at_end());
    }

    #[test]
    fn doubles_strings_tensors_and_records_by_hand() {
        // 0.375 = 3 · 2^−3; "ab"; a 1×1×1×2 tensor [1.5, −2.0] in raw f32; then a record named "x_".
        let mut b = vec![
            0x01, 0x03, 0x81, 0x03, 0x01, 0x02, b'a', b'b', 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02,
        ];
        b.extend_from_slice(&1.5f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        b.extend_from_slice(&[0xff, 0x01, 0x02, b'x', b'_', 0x01, 0x07]);
        let mut r = Reader::new(&b);
        assert_eq!(r.double().unwrap(), 0.375);
        assert_eq!(r.string().unwrap(), "ab");
        assert_eq!(r.tensor().unwrap(), ([1, 1, 1, 2], vec![1.5, -2.0]));
        assert_eq!(r.next_record(&["y_", "x_"]), Some("x_"));
        assert_eq!(r.int().unwrap(), 7);
        assert_eq!(r.next_record(&["x_"]), None);
    }

    #[test]
    fn damage_is_named_with_its_offset() {
        let e = Reader::new(&[0x02, 0x01]).int().unwrap_err();
        assert_eq!(e, (0, "file ends inside an integer".into()));
        let e = Reader::new(&[0x31]).int().unwrap_err();
        assert!(e.1.contains("not an integer's control byte"), "{e:?}");
        // A vector claiming 100 elements in a 2-byte file.
        let e = Reader::new(&[0x01, 0x64]).vec("ints", Reader::int).unwrap_err();
        assert_eq!(e, (2, "a vector of 100 ints is longer than the rest of the file".into()));
        // A 2 × 2 matrix where a column is expected.
        let e = Reader::new(&[0x81, 0x02, 0x81, 0x02]).column().unwrap_err();
        assert!(e.1.contains("a matrix of 2 × 2"), "{e:?}");
    }
}
