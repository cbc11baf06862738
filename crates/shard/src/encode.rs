//! Decoding, cropping, colour conversion, resizing and PNG encoding of one record's image. Pure functions
//! over one record, so the caller can run them on rayon threads; errors are returned as text for the
//! caller's bad-input policy.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ExtendedColorType, GrayImage, ImageEncoder, ImageReader};

use crate::sources::ImageSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Color {
    /// Grey stays grey, colour becomes RGB (alpha dropped).
    Keep,
    Grey,
    Rgb,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct ImageOptions {
    /// Square side to resize to; `None` keeps the size.
    pub(crate) resize: Option<u32>,
    pub(crate) color: Color,
}

/// A stored image: PNG bytes and shape.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) png: Vec<u8>,
    pub(crate) height: u32,
    pub(crate) width: u32,
    pub(crate) channels: u8,
}

fn decode_file(path: &std::path::Path) -> Result<DynamicImage, String> {
    // A pipe, socket or device under an image's name would block the read or never end.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot open image {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{}: not a regular file (a pipe, socket or device); expected an image file",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open image {}: {e}", path.display()))?;
    exchange::image_bytes::check_whole(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
    reader.decode().map_err(|e| format!("unreadable or truncated image {}: {e}", path.display()))
}

fn load(src: &ImageSource) -> Result<DynamicImage, String> {
    match src {
        ImageSource::File(p) => decode_file(p),
        ImageSource::FileCrop { path, x, y, w, h } => {
            let img = decode_file(path)?;
            let (iw, ih) = (img.width() as i64, img.height() as i64);
            let (x0, y0) = ((*x).clamp(0, iw), (*y).clamp(0, ih));
            let (x1, y1) = ((x + w).clamp(0, iw), (y + h).clamp(0, ih));
            if x1 <= x0 || y1 <= y0 {
                return Err(format!("face box ({x},{y},{w},{h}) lies outside the {iw}x{ih} image {}", path.display()));
            }
            Ok(img.crop_imm(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32))
        }
        ImageSource::Grey { width, height, pixels } => GrayImage::from_raw(*width, *height, pixels.clone())
            .map(DynamicImage::ImageLuma8)
            .ok_or_else(|| format!("{} pixels do not make a {width}x{height} image", pixels.len())),
    }
}

fn is_grey(img: &DynamicImage) -> bool {
    matches!(
        img,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLumaA16(_)
    )
}

/// Loads, converts, resizes and PNG-encodes one image.
pub(crate) fn process(src: &ImageSource, opts: &ImageOptions) -> Result<Encoded, String> {
    let img = load(src)?;
    let grey = match opts.color {
        Color::Keep => is_grey(&img),
        Color::Grey => true,
        Color::Rgb => false,
    };
    let img = match opts.resize {
        Some(n) if img.width() != n || img.height() != n => img.resize_exact(n, n, FilterType::Triangle),
        _ => img,
    };
    let (buf, channels, color) = if grey {
        (img.to_luma8().into_raw(), 1u8, ExtendedColorType::L8)
    } else {
        (img.to_rgb8().into_raw(), 3u8, ExtendedColorType::Rgb8)
    };
    let (width, height) = (img.width(), img.height());
    let mut png = Vec::with_capacity(buf.len() / 2 + 64);
    PngEncoder::new_with_quality(Cursor::new(&mut png), CompressionType::Fast, PngFilter::Adaptive)
        .write_image(&buf, width, height, color)
        .map_err(|e| format!("cannot encode PNG: {e}"))?;
    Ok(Encoded { png, height, width, channels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey_src() -> ImageSource {
        ImageSource::Grey { width: 4, height: 2, pixels: vec![0, 10, 20, 30, 40, 50, 60, 70] }
    }

    #[test]
    fn grey_round_trips_losslessly() {
        let e = process(&grey_src(), &ImageOptions { resize: None, color: Color::Keep }).unwrap();
        assert_eq!((e.width, e.height, e.channels), (4, 2, 1));
        let back = image::load_from_memory(&e.png).unwrap().to_luma8().into_raw();
        assert_eq!(back, vec![0, 10, 20, 30, 40, 50, 60, 70]);
    }

    #[test]
    fn rgb_and_resize() {
        let e = process(&grey_src(), &ImageOptions { resize: Some(8), color: Color::Rgb }).unwrap();
        assert_eq!((e.width, e.height, e.channels), (8, 8, 3));
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        let good = process(&grey_src(), &ImageOptions { resize: None, color: Color::Keep }).unwrap().png;
        std::fs::write(&p, &good[..good.len() / 2]).unwrap();
        let err =
            process(&ImageSource::File(p.clone()), &ImageOptions { resize: None, color: Color::Keep }).unwrap_err();
        assert!(err.contains("t.png"), "{err}");
        let missing = process(
            &ImageSource::File(dir.path().join("none.png")),
            &ImageOptions { resize: None, color: Color::Keep },
        )
        .unwrap_err();
        assert!(missing.contains("none.png"));
    }
}
