//! A drawing's shapes as pixels: lines and dots by each pixel's distance to the shape (so their
//! edges are smoothed), text in an 8×8 bitmap font (font8x8's public-domain glyphs) — enough
//! for a chart's labels, with no font files to find.

use super::{Anchor, Drawing, Shape};

pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Row by row, 3 bytes a pixel.
    pub rgb: Vec<u8>,
}

/// A glyph's advance and height, in drawing units.
const GLYPH: f64 = 8.0;
/// A glyph's baseline, in rows from its top.
const BASELINE: f64 = 7.0;

/// `#rgb` or `#rrggbb`; anything else is black.
fn color(spec: &str) -> [u8; 3] {
    let hex = spec.trim_start_matches('#');
    let digit = |i: usize, n: usize| u8::from_str_radix(hex.get(i..i + n)?, 16).ok();
    let c = match hex.len() {
        3 => (0..3)
            .map(|i| digit(i, 1).map(|v| v * 17))
            .collect::<Option<Vec<u8>>>(),
        6 => (0..3).map(|i| digit(i * 2, 2)).collect(),
        _ => None,
    };
    c.and_then(|v| v.try_into().ok()).unwrap_or([0, 0, 0])
}

impl Canvas {
    /// Mixes `rgb` into pixel (x, y) by `alpha` (0 to 1); outside the canvas, nothing.
    fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f64) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let at = (y as usize * self.width as usize + x as usize) * 3;
        for (p, c) in self.rgb[at..at + 3].iter_mut().zip(rgb) {
            *p = (f64::from(*p) * (1.0 - a) + f64::from(c) * a).round() as u8;
        }
    }

    /// Every pixel in the box (x0, y0)-(x1, y1) gets `rgb` by `coverage(pixel centre)`.
    fn cover(&mut self, bounds: [f64; 4], rgb: [u8; 3], coverage: impl Fn(f64, f64) -> f64) {
        let [x0, y0, x1, y1] = bounds;
        for y in (y0.floor() as i64)..=(y1.ceil() as i64) {
            for x in (x0.floor() as i64)..=(x1.ceil() as i64) {
                let a = coverage(x as f64 + 0.5, y as f64 + 0.5);
                if a > 0.0 {
                    self.blend(x, y, rgb, a);
                }
            }
        }
    }

    /// A segment `width` pixels wide.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, rgb: [u8; 3]) {
        let r = width / 2.0 + 1.0;
        let bounds = [
            a.0.min(b.0) - r,
            a.1.min(b.1) - r,
            a.0.max(b.0) + r,
            a.1.max(b.1) + r,
        ];
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        self.cover(bounds, rgb, |x, y| {
            let t = if len2 > 0.0 {
                (((x - a.0) * dx + (y - a.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let d = (x - a.0 - t * dx).hypot(y - a.1 - t * dy);
            width / 2.0 + 0.5 - d
        });
    }

    fn dot(&mut self, c: (f64, f64), radius: f64, rgb: [u8; 3]) {
        let bounds = [
            c.0 - radius - 1.0,
            c.1 - radius - 1.0,
            c.0 + radius + 1.0,
            c.1 + radius + 1.0,
        ];
        self.cover(bounds, rgb, |x, y| radius + 0.5 - (x - c.0).hypot(y - c.1));
    }

    /// `text` with its baseline's start at (x, y), each font pixel `px` pixels square.
    fn text(&mut self, x: f64, y: f64, px: f64, bold: bool, rgb: [u8; 3], text: &str) {
        let top = y - BASELINE * px;
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or(font8x8::legacy::BASIC_LEGACY[b'?' as usize]);
            let left = x + i as f64 * GLYPH * px;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    let (gx, gy) = (left + col as f64 * px, top + row as f64 * px);
                    let widen = if bold { px.max(1.0) } else { 0.0 };
                    self.cover(
                        [gx, gy, gx + px + widen - 1.0, gy + px - 1.0],
                        rgb,
                        |_, _| 1.0,
                    );
                }
            }
        }
    }
}

/// `drawing` at `scale` pixels per unit, on white.
pub fn draw(drawing: &Drawing, scale: u32) -> Canvas {
    let s = f64::from(scale.max(1));
    let (width, height) = (drawing.width * scale.max(1), drawing.height * scale.max(1));
    let mut canvas = Canvas {
        width,
        height,
        rgb: vec![255; width as usize * height as usize * 3],
    };
    let at = |p: (f64, f64)| (p.0 * s, p.1 * s);
    for shape in &drawing.shapes {
        match shape {
            Shape::Text {
                x,
                y,
                bold,
                color: c,
                anchor,
                text,
                ..
            } => {
                let w = text.chars().count() as f64 * GLYPH;
                let x = if *anchor == Anchor::Middle {
                    x - w / 2.0
                } else {
                    *x
                };
                canvas.text(x * s, y * s, s, *bold, color(c), text);
            }
            Shape::Line {
                from,
                to,
                color: c,
                width,
            } => canvas.line(at(*from), at(*to), width * s, color(c)),
            Shape::Polyline {
                points,
                color: c,
                width,
            } => {
                for pair in points.windows(2) {
                    canvas.line(at(pair[0]), at(pair[1]), width * s, color(c));
                }
            }
            Shape::Dot {
                at: p,
                radius,
                color: c,
                ..
            } => canvas.dot(at(*p), radius * s, color(c)),
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(c: &Canvas, x: u32, y: u32) -> [u8; 3] {
        let at = ((y * c.width + x) * 3) as usize;
        c.rgb[at..at + 3].try_into().unwrap()
    }

    #[test]
    fn shapes_land_where_they_are_drawn_in_their_colour() {
        let mut d = Drawing::new(40, 20);
        d.push(Shape::Line {
            from: (0.0, 10.0),
            to: (40.0, 10.0),
            color: "#f00",
            width: 2.0,
        });
        d.push(Shape::Dot {
            at: (30.0, 4.0),
            radius: 2.0,
            color: "#0000ff",
            attributes: String::new(),
            title: String::new(),
        });
        d.push(Shape::Text {
            x: 1.0,
            y: 19.0,
            size: 11,
            bold: false,
            color: "#000",
            anchor: Anchor::Start,
            text: "|".into(),
        });
        let c = draw(&d, 2);
        assert_eq!((c.width, c.height), (80, 40));
        assert_eq!(pixel(&c, 40, 20), [255, 0, 0]);
        assert_eq!(pixel(&c, 40, 30), [255, 255, 255]);
        assert_eq!(pixel(&c, 60, 8), [0, 0, 255]);
        // font8x8's '|' is columns 3 and 4 of its top rows: its row 1 is pixel row 26 here
        // (baseline 19 × 2, less 7 rows × 2, plus 2), columns 8 to 11.
        let dark: Vec<u32> = (0..c.width)
            .filter(|x| pixel(&c, *x, 26) == [0, 0, 0])
            .collect();
        assert_eq!(dark, [8, 9, 10, 11]);
        assert_eq!(color("#4e79a7"), [0x4e, 0x79, 0xa7]);
        assert_eq!(color("nonsense"), [0, 0, 0]);
    }
}
