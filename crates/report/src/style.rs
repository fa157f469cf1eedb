//! Colours (colour-blind safe), the bundled font, and which classes get their own colour.

use plotters::style::{FontStyle, RGBColor};
use std::sync::Once;

/// Paul Tol's "muted" scheme (colour-blind safe) plus black: one colour per shown class.
pub const CLASS_COLOURS: [RGBColor; 10] = [
    RGBColor(0x33, 0x22, 0x88),
    RGBColor(0xCC, 0x66, 0x77),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0xDD, 0xCC, 0x77),
    RGBColor(0x88, 0xCC, 0xEE),
    RGBColor(0x88, 0x22, 0x55),
    RGBColor(0x44, 0xAA, 0x99),
    RGBColor(0x99, 0x99, 0x33),
    RGBColor(0xAA, 0x44, 0x99),
    RGBColor(0x00, 0x00, 0x00),
];
/// Classes beyond the coloured ones.
pub const OTHER: RGBColor = RGBColor(0xBB, 0xBB, 0xBB);
/// Okabe-Ito blue and vermillion for two-series plots.
pub const OKABE_BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
/// Okabe-Ito bluish green for reference marks.
pub const OKABE_GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);

/// The font every figure uses: DejaVu Sans (Bitstream Vera licence, see
/// `fonts/DejaVuSans-LICENSE`), bundled so PNG text does not depend on the machine's fonts.
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Register the bundled font with plotters (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            plotters::style::register_font(FONT, style, FONT_BYTES)
                .unwrap_or_else(|_| panic!("the bundled DejaVu Sans is a valid font"));
        }
    });
}

/// The classes that get their own colour and legend entry: the `k` largest (ties to the lower
/// index), in class order. The others are drawn grey as "other classes".
pub fn shown_classes(counts: &[usize], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// Colour of class `c` given the shown classes.
pub fn class_colour(c: usize, shown: &[usize]) -> RGBColor {
    shown
        .iter()
        .position(|&s| s == c)
        .map_or(OTHER, |i| CLASS_COLOURS[i % CLASS_COLOURS.len()])
}

/// A diverging blue-white-red colour for `v` in [-1, 1].
pub fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let mix = |a: u8, b: u8, f: f64| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (end, f) = if v < 0.0 {
        ((0x21u8, 0x66u8, 0xACu8), -v)
    } else {
        ((0xB2, 0x18, 0x2B), v)
    };
    RGBColor(
        mix(0xF7, end.0, f),
        mix(0xF7, end.1, f),
        mix(0xF7, end.2, f),
    )
}

/// A sequential light-to-dark colour (viridis-like, colour-blind safe) for `f` in [0, 1].
pub fn sequential(f: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [
        (0xFD, 0xE7, 0x25),
        (0x5E, 0xC9, 0x62),
        (0x21, 0x91, 0x8C),
        (0x3B, 0x52, 0x8B),
        (0x44, 0x01, 0x54),
    ];
    let f = f.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let t = f - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
