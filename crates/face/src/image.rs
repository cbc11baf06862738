//! The picture the face stage reads: 8-bit grey or RGB, row-major `h × w × c`.

#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub w: usize,
    pub h: usize,
    /// 1 (grey) or 3 (RGB).
    pub c: usize,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(w: usize, h: usize, c: usize) -> Self {
        Image { w, h, c, data: vec![0; w * h * c] }
    }

    /// The pixel's intensity as dlib's `get_pixel_intensity` reads it (grey: the value; RGB: the channels'
    /// mean rounded down), `None` outside the image.
    #[inline]
    pub fn intensity(&self, x: i64, y: i64) -> Option<u8> {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return None;
        }
        let i = (y as usize * self.w + x as usize) * self.c;
        Some(match self.c {
            1 => self.data[i],
            _ => ((u32::from(self.data[i]) + u32::from(self.data[i + 1]) + u32::from(self.data[i + 2])) / 3) as u8,
        })
    }
}
