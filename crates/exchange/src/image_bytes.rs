//! What counts as a whole image file, beyond what the decoders check. The stages decode users' photos with
//! the `image` crate, whose JPEG decoder (zune-jpeg, lenient) fills a file cut short with grey rows and
//! reports success; a face read that way is silently wrong data.

use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;

/// `Err` with the reason when `bytes` is a JPEG that ends before its image does (a download or copy cut
/// short). Other formats, and JPEGs that end with their end-of-image marker, pass without decoding.
pub fn check_whole(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || ends_with_eoi(bytes) {
        return Ok(());
    }
    // No end marker: a strict decode tells a file cut short (it runs out of data) from one whose writer only
    // left the marker out.
    let options = DecoderOptions::default().set_strict_mode(true).set_max_width(usize::MAX).set_max_height(usize::MAX);
    match zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options).decode() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("truncated JPEG: the file ends before its image does ({e:?})")),
    }
}

/// Whether the last bytes, padding aside, are the JPEG end-of-image marker `FF D9`.
fn ends_with_eoi(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0 && !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn a_whole_jpeg_passes_and_a_cut_one_is_named() {
        let whole = jpeg();
        assert!(check_whole(&whole).is_ok());
        let mut padded = whole.clone();
        padded.extend([0, 0, b'\n']);
        assert!(check_whole(&padded).is_ok(), "padding after the end marker is fine");
        let e = check_whole(&whole[..whole.len() / 2]).unwrap_err();
        assert!(e.contains("truncated JPEG"), "{e}");
        // The lenient decoder the stages use accepts the cut file: the reason this check exists.
        assert!(image::load_from_memory(&whole[..whole.len() / 2]).is_ok());
        assert!(check_whole(b"\x89PNG not a jpeg").is_ok(), "other formats are the decoders' business");
    }
}
