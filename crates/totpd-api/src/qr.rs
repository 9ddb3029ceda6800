//! Enrollment QR codes: the `otpauth://` URI of a generated secret as a
//! QR code, for the create response's `"qr":"svg"` or `"qr":"png"`, so
//! the vault can be the side that shows the code a phone scans.
//!
//! Error correction level M (15% of the code can be lost: a photo of a
//! screen still scans) and the quiet zone of four modules that ISO/IEC
//! 18004 asks for. The SVG is one `path` of unit squares in a `viewBox` in
//! modules, so it scales to any size without blurring; the PNG is 8-bit
//! greyscale at [`PNG_MODULE_PX`] pixels a module.
//!
//! The code holds the secret. Our own buffers (the module grid, the PNG
//! bytes) are zeroized after use; what remains is the response body, as
//! for the `secret` field beside it.

use std::fmt::Write as _;

use base64::Engine as _;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::{Zeroize, Zeroizing};

/// Modules of white border on every side.
const QUIET_ZONE: usize = 4;

/// Pixels per module in the PNG: 8 makes an `otpauth` URI's code (version 6
/// to 10) about 450 to 600 pixels wide.
pub(crate) const PNG_MODULE_PX: usize = 8;

/// What a create asked for in `qr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QrFormat {
    /// SVG text.
    Svg,
    /// A `data:image/png;base64,` URI.
    Png,
}

impl QrFormat {
    /// `svg` or `png`, as the request spells them (exactly, lower case).
    pub(crate) fn parse(text: &str) -> Option<QrFormat> {
        match text {
            "svg" => Some(QrFormat::Svg),
            "png" => Some(QrFormat::Png),
            _ => None,
        }
    }
}

/// Why a QR code could not be made. Never holds the data.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QrError {
    /// Longer than a QR code holds (about 2,300 bytes at level M); a URI
    /// made from the create's limits is far shorter.
    #[error("the URI is too long for a QR code")]
    TooLong,
    /// The PNG encoder failed (only on a broken writer: ours is memory).
    #[error("the QR code could not be encoded as PNG")]
    Png(#[source] png::EncodingError),
}

/// `data` as a QR code in `format`: SVG text, or a PNG data URI.
pub(crate) fn render(data: &str, format: QrFormat) -> Result<Zeroizing<String>, QrError> {
    let grid = Grid::new(data)?;
    match format {
        QrFormat::Svg => Ok(grid.svg()),
        QrFormat::Png => grid.png_data_uri(),
    }
}

/// Whether `data` fits in a QR code at this module's error correction.
pub(crate) fn fits(data: &str) -> bool {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).is_ok()
}

/// The dark modules, row by row, quiet zone included.
struct Grid {
    /// Modules a side, quiet zone included.
    side: usize,
    dark: Zeroizing<Vec<bool>>,
}

impl Grid {
    fn new(data: &str) -> Result<Grid, QrError> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
            .map_err(|_| QrError::TooLong)?;
        let width = code.width();
        let mut colors = code.into_colors();
        let side = width + 2 * QUIET_ZONE;
        let mut dark = Zeroizing::new(vec![false; side * side]);
        for (i, color) in colors.iter().enumerate() {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            if let Some(cell) = dark.get_mut(y * side + x) {
                *cell = *color == Color::Dark;
            }
        }
        // Color is not Zeroize: overwrite it by hand.
        colors.iter_mut().for_each(|c| *c = Color::Light);
        Ok(Grid { side, dark })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark.get(y * self.side + x).copied().unwrap_or(false)
    }

    /// One path: for each run of dark modules in a row, a rectangle.
    fn svg(&self) -> Zeroizing<String> {
        let side = self.side;
        let mut svg = Zeroizing::new(String::with_capacity(64 + side * side * 3));
        // Writing to a String cannot fail.
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
             fill=\"#fff\"/><path fill=\"#000\" d=\""
        );
        for y in 0..side {
            let mut x = 0;
            while x < side {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < side && self.is_dark(x, y) {
                    x += 1;
                }
                let _ = write!(svg, "M{start} {y}h{}v1H{start}z", x - start);
            }
        }
        svg.push_str("\"/></svg>");
        svg
    }

    fn png_data_uri(&self) -> Result<Zeroizing<String>, QrError> {
        let px = self.side * PNG_MODULE_PX;
        let size = u32::try_from(px).map_err(|_| QrError::TooLong)?;
        let mut pixels = Zeroizing::new(Vec::with_capacity(px * px));
        for y in 0..px {
            for x in 0..px {
                let dark = self.is_dark(x / PNG_MODULE_PX, y / PNG_MODULE_PX);
                pixels.push(if dark { 0u8 } else { 255u8 });
            }
        }
        let mut file = Zeroizing::new(Vec::new());
        {
            let mut encoder = png::Encoder::new(&mut *file, size, size);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(QrError::Png)?;
            writer.write_image_data(&pixels).map_err(QrError::Png)?;
            writer.finish().map_err(QrError::Png)?;
        }
        let mut uri = Zeroizing::new(String::from("data:image/png;base64,"));
        base64::engine::general_purpose::STANDARD.encode_string(&*file, &mut uri);
        file.zeroize();
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_spelled_exactly() {
        assert_eq!(QrFormat::parse("svg"), Some(QrFormat::Svg));
        assert_eq!(QrFormat::parse("png"), Some(QrFormat::Png));
        for other in ["SVG", "Png", "jpeg", "", " svg"] {
            assert_eq!(QrFormat::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_grid_has_the_quiet_zone_and_finder_patterns() {
        let grid = Grid::new("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP").unwrap();
        let q = QUIET_ZONE;
        for i in 0..grid.side {
            assert!(
                !grid.is_dark(i, 0) && !grid.is_dark(0, i),
                "the border is light"
            );
            assert!(!grid.is_dark(i, grid.side - 1) && !grid.is_dark(grid.side - 1, i));
        }
        // The top-left finder pattern: a dark 7x7 ring around a light one.
        assert!(grid.is_dark(q, q) && grid.is_dark(q + 6, q + 6));
        assert!(!grid.is_dark(q + 1, q + 1) && grid.is_dark(q + 3, q + 3));
    }

    #[test]
    fn data_longer_than_a_qr_code_holds_is_an_error() {
        let long = "x".repeat(4000);
        assert!(!fits(&long));
        assert!(matches!(
            render(&long, QrFormat::Svg),
            Err(QrError::TooLong)
        ));
        assert!(fits(&"x".repeat(2000)));
    }

    #[test]
    fn the_png_is_a_data_uri_of_a_png_file() {
        let uri = render("otpauth://totp/a?secret=JBSWY3DPEHPK3PXP", QrFormat::Png).unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]));
    }
}
