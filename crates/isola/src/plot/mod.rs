//! Charts as a list of shapes in one coordinate space, written out two ways: SVG (`svg`, for a
//! page or a browser) and PNG (`raster.rs` draws the shapes into pixels, `png.rs` encodes
//! them). One description of a chart, so the two files cannot disagree.

mod png;
mod raster;

/// Where a text's x is: its start or its middle.
#[derive(Clone, Copy, PartialEq)]
pub enum Anchor {
    Start,
    Middle,
}

pub enum Shape {
    Text {
        x: f64,
        y: f64,
        size: u32,
        bold: bool,
        color: &'static str,
        anchor: Anchor,
        text: String,
    },
    Line {
        from: (f64, f64),
        to: (f64, f64),
        color: &'static str,
        width: f64,
    },
    Polyline {
        points: Vec<(f64, f64)>,
        color: &'static str,
        width: f64,
    },
    /// A point, with what it stands for: SVG attributes (`data-...`) and a tooltip.
    Dot {
        at: (f64, f64),
        radius: f64,
        color: &'static str,
        attributes: String,
        title: String,
    },
}

/// A picture `width` × `height` of shapes, drawn in order.
pub struct Drawing {
    pub width: u32,
    pub height: u32,
    pub shapes: Vec<Shape>,
}

/// `s` as XML text or an attribute value.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Drawing {
    pub fn new(width: u32, height: u32) -> Drawing {
        Drawing {
            width,
            height,
            shapes: Vec::new(),
        }
    }

    pub fn push(&mut self, shape: Shape) {
        self.shapes.push(shape);
    }

    /// A self-contained SVG document.
    pub fn svg(&self) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"13\">\n",
            self.width, self.height
        );
        for shape in &self.shapes {
            s.push_str(&match shape {
                Shape::Text {
                    x,
                    y,
                    size,
                    bold,
                    color,
                    anchor,
                    text,
                } => format!(
                    "<text x=\"{x:.0}\" y=\"{y:.0}\" font-size=\"{size}\"{}{} fill=\"{color}\">{}</text>\n",
                    if *bold { " font-weight=\"bold\"" } else { "" },
                    if *anchor == Anchor::Middle {
                        " text-anchor=\"middle\""
                    } else {
                        ""
                    },
                    escape(text)
                ),
                Shape::Line {
                    from,
                    to,
                    color,
                    width,
                } => format!(
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"{width}\"/>\n",
                    from.0, from.1, to.0, to.1
                ),
                Shape::Polyline {
                    points,
                    color,
                    width,
                } => format!(
                    "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" points=\"{}\"/>\n",
                    points
                        .iter()
                        .map(|(x, y)| format!("{x:.1},{y:.1}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                Shape::Dot {
                    at,
                    radius,
                    color,
                    attributes,
                    title,
                } => format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" fill=\"{color}\" {attributes}><title>{}</title></circle>\n",
                    at.0,
                    at.1,
                    escape(title)
                ),
            });
        }
        s.push_str("</svg>\n");
        s
    }

    /// A PNG of the drawing at `scale` pixels per unit, on white.
    pub fn png(&self, scale: u32) -> Vec<u8> {
        let canvas = raster::draw(self, scale);
        png::encode(canvas.width, canvas.height, &canvas.rgb)
    }
}
