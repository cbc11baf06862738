//! `shard synthetic --preview out.png`: a labeled montage of generated faces, one row per class, each row
//! captioned with its class name, for eyeballing what the generator draws.

use std::path::Path;

use exchange::labels::ALL;
use image::{GrayImage, Luma};

use crate::sources::synthetic::{face, GenConfig};

/// 3×5 capitals: enough to caption class names without shipping a font.
fn glyph(c: char) -> [u8; 5] {
    let rows: [&str; 5] = match c.to_ascii_uppercase() {
        'A' => ["010", "101", "111", "101", "101"],
        'B' => ["110", "101", "110", "101", "110"],
        'C' => ["011", "100", "100", "100", "011"],
        'D' => ["110", "101", "101", "101", "110"],
        'E' => ["111", "100", "110", "100", "111"],
        'F' => ["111", "100", "110", "100", "100"],
        'G' => ["011", "100", "101", "101", "011"],
        'H' => ["101", "101", "111", "101", "101"],
        'I' => ["111", "010", "010", "010", "111"],
        'J' => ["001", "001", "001", "101", "010"],
        'K' => ["101", "101", "110", "101", "101"],
        'L' => ["100", "100", "100", "100", "111"],
        'M' => ["101", "111", "111", "101", "101"],
        'N' => ["110", "101", "101", "101", "101"],
        'O' => ["010", "101", "101", "101", "010"],
        'P' => ["110", "101", "110", "100", "100"],
        'Q' => ["010", "101", "101", "110", "011"],
        'R' => ["110", "101", "110", "101", "101"],
        'S' => ["011", "100", "010", "001", "110"],
        'T' => ["111", "010", "010", "010", "010"],
        'U' => ["101", "101", "101", "101", "111"],
        'V' => ["101", "101", "101", "101", "010"],
        'W' => ["101", "101", "111", "111", "101"],
        'X' => ["101", "101", "010", "101", "101"],
        'Y' => ["101", "101", "010", "010", "010"],
        'Z' => ["111", "001", "010", "100", "111"],
        _ => ["000", "000", "000", "000", "000"],
    };
    rows.map(|r| u8::from_str_radix(r, 2).unwrap_or(0))
}

fn text(img: &mut GrayImage, x0: u32, y0: u32, s: &str, scale: u32) {
    for (k, ch) in s.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (0b100 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let x = x0 + (k as u32 * 4 + col) * scale + dx;
                            let y = y0 + row as u32 * scale + dy;
                            if x < img.width() && y < img.height() {
                                img.put_pixel(x, y, Luma([255]));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Writes a montage of `per_class` faces for each class (faces found by scanning the train stream).
pub(crate) fn write(path: &Path, cfg: &GenConfig, per_class: usize) -> anyhow::Result<()> {
    let s = cfg.size;
    let label_w = 4 * 9 * 2 + 8;
    let mut rows: Vec<Vec<GrayImage>> = vec![Vec::new(); ALL.len()];
    let mut i = 0;
    while rows.iter().any(|r| r.len() < per_class) && i < 200_000 {
        let (img, _votes, class) = face(cfg, 0, i);
        if rows[class].len() < per_class {
            rows[class].push(img);
        }
        i += 1;
    }
    let mut out = GrayImage::from_pixel(label_w + per_class as u32 * (s + 2), ALL.len() as u32 * (s + 2), Luma([20]));
    for (c, faces) in rows.iter().enumerate() {
        let y = c as u32 * (s + 2);
        text(&mut out, 4, y + s / 2 - 5, ALL[c].name(), 2);
        for (j, f) in faces.iter().enumerate() {
            image::imageops::replace(&mut out, f, (label_w + j as u32 * (s + 2)) as i64, y as i64);
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    out.write_to(&mut buf, image::ImageFormat::Png)?;
    exchange::atomic::write_bytes(path, buf.get_ref())?;
    Ok(())
}
