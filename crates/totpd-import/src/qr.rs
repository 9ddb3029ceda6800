//! QR codes in screenshots and photos (PNG, JPEG, WebP), read into entries.
//!
//! Strategy: check the header's dimensions against [`Limits`] before
//! decoding a pixel (decompression bombs), decode to greyscale (alpha over
//! white), shrink by an integer box filter to at most [`WORK_PIXELS`], then
//! run a fixed list of detection passes with rqrr (a quirc port), each on a
//! bitmap we threshold ourselves: Otsu's global threshold and an 85 % of
//! local-mean threshold, dark-on-light, then both inverted only if nothing
//! was found (dark mode). Codes are deduplicated by text and put in reading
//! order. rqrr's own adaptive threshold (a running mean along each row)
//! missed the tilted code and the phone photo; Otsu and the local mean read
//! every fixture, and are cheaper. No upscale pass: the smallest fixture
//! (2 px modules) reads without it, and doubling a 1080p page costs ~75 ms
//! a pass. Before each pass the finder-pattern candidates are counted (one
//! read of the bitmap); over [`MAX_FINDER_CANDIDATES`] rqrr is not run,
//! because its grouping copies the whole bitmap per candidate pair (a
//! 6 KiB PNG tiled with finder patterns kept it busy for minutes).
//!
//! Measured (release, this 2-core machine under load, ms; "1/0" = codes
//! decoded by the pass; `read` = whole call, best of 5):
//!
//! | fixture (tests/data/qr) | Otsu | local mean | Otsu inv. | mean inv. | `read` |
//! |---|---|---|---|---|---|
//! | shot_1x.png | 1 · 16 | 1 · 17 | – | – | 50–60 |
//! | shot_0.5x.png (2 px modules) | 1 · 24 | 1 · 28 | – | – | 47–64 |
//! | shot_3x.png (12 px modules) | 1 · 21 | 1 · 28 | – | – | 74 |
//! | shot_rot8.png | 1 · 17 | 1 · 15 | – | – | 51–67 |
//! | shot_q60.jpg | 1 · 16 | 1 · 17 | – | – | 48–74 |
//! | shot_dark.png | 0 · 13 | 0 · 9 | 1 · 16 | 1 · 17 | 67–100 |
//! | shot_three.png (3 codes) | 3 · 33 | 3 · 30 | – | – | 77–108 |
//! | shot.webp | 1 · 21 | 1 · 22 | – | – | 64–88 |
//! | shot_4k.png (3840×2160, shrunk ½) | 1 · 14 | 1 · 30 | – | – | 74–102 |
//! | photo.jpg (perspective, blur, noise) | 1 · 22 | 1 · 21 | – | – | 64–84 |
//! | shot_no_qr.png | 0 · 8 | 0 · 8 | 0 · 14 | 0 · 9 | 57–79 |

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader};

use crate::text::{is_otp_uri, push_uri};
use crate::{Entry, ImportError, Limits, check_count};

/// Pixels of the image the passes scan. A larger image is first shrunk by
/// an integer factor to fit (a 4K screenshot by 2, a 12 MP photo by 2, a
/// 40 MP one by 4), so the work of every pass is bounded whatever the
/// input. 4.2 MP keeps a 2560×1440 screenshot whole: its smallest codes
/// keep every pixel of their modules.
const WORK_PIXELS: u64 = 4_200_000;

/// Bytes the image decoders may allocate besides the decoded image itself
/// (PNG's row buffers and inflate window, JPEG's component planes, ...).
const DECODER_SLACK_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes per pixel of the widest image the enabled decoders produce
/// (16-bit RGBA PNG).
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Half the side of the local-mean window, in pixels of the scanned image.
/// 127 px spans several modules of every code we expect (2 px modules of a
/// zoomed-out page up to the ~50 px finder cores of a 3x one) while staying
/// local enough to follow a photo's uneven light.
const MEAN_RADIUS: usize = 63;

/// A pixel is dark when it is under this share (in percent) of its local
/// mean: flat areas (mean = pixel) are never dark, so paper texture and
/// JPEG noise do not make speckle.
const MEAN_PERCENT: u32 = 85;

/// The reason of an entry whose QR code holds some other text. The text
/// itself is not repeated: a URL or note can hold secrets too.
const NOT_OTP: &str =
    "the QR code holds text that is not an otpauth:// or otpauth-migration:// URI";

/// Reads every QR code of the image in `data` into entries, in reading
/// order (rows top to bottom, each row left to right). A code that does not
/// hold an OTP URI is an invalid entry; an image without any code, or
/// without any OTP code, is an error.
pub(crate) fn read(data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    let grey = decode_grey(data, limits)?;
    let work = shrink_to_budget(grey);
    let codes = scan(&work);
    if codes.is_empty() {
        return Err(ImportError::NoQrCode);
    }
    if !codes.iter().any(|code| is_otp_uri(&code.text)) {
        return Err(ImportError::NoOtpQrCode);
    }
    let mut entries = Vec::new();
    for code in &codes {
        if is_otp_uri(&code.text) {
            push_uri(code.text.trim(), &mut entries);
        } else {
            entries.push(Entry::invalid(None, None, NOT_OTP));
        }
        check_count(entries.len(), limits)?;
    }
    Ok(entries)
}

/// Whether `data` starts like a PNG, JPEG or WebP file.
pub(crate) fn sniff(data: &[u8]) -> bool {
    data.starts_with(b"\x89PNG\r\n\x1a\n")
        || data.starts_with(b"\xff\xd8\xff")
        || (data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP"))
}

/// Decodes `data` to 8-bit greyscale, transparent pixels over white.
///
/// The dimensions are read from the header and checked against
/// [`Limits::max_image_pixels`] before any pixel is decoded; the decoder's
/// own allocation bound is then set to the image plus a fixed slack, so a
/// file whose pixel data disagrees with its header cannot make it allocate
/// more.
fn decode_grey(data: &[u8], limits: &Limits) -> Result<GrayImage, ImportError> {
    let mut reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|error| image_error(&error))?;
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(
        limits
            .max_image_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(DECODER_SLACK_BYTES),
    );
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(|error| image_error(&error))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(ImportError::ImageTooLarge {
            width,
            height,
            max_pixels: limits.max_image_pixels,
        });
    }
    if pixels == 0 {
        return Err(ImportError::Image {
            reason: "the image has no pixels".to_owned(),
        });
    }
    let total = decoder.total_bytes();
    let mut pixel_limits = image::Limits::default();
    pixel_limits.max_image_width = Some(width);
    pixel_limits.max_image_height = Some(height);
    pixel_limits.max_alloc = Some(total.saturating_add(DECODER_SLACK_BYTES));
    pixel_limits
        .reserve(total)
        .map_err(|error| image_error(&error))?;
    decoder
        .set_limits(pixel_limits)
        .map_err(|error| image_error(&error))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|error| image_error(&error))?;
    Ok(if image.color().has_alpha() {
        over_white(image)
    } else {
        image.into_luma8()
    })
}

fn image_error(error: &dyn std::fmt::Display) -> ImportError {
    ImportError::Image {
        reason: error.to_string(),
    }
}

/// Greyscale with transparency flattened over white: a QR code exported
/// as black modules on a transparent background has "black" transparent
/// pixels, which would otherwise hide the code.
fn over_white(image: DynamicImage) -> GrayImage {
    let la = image.into_luma_alpha8();
    let (width, height) = la.dimensions();
    let grey: Vec<u8> = la
        .as_raw()
        .chunks_exact(2)
        .map(|pixel| match *pixel {
            [luma, alpha] => {
                let (luma, alpha) = (u32::from(luma), u32::from(alpha));
                // (l·a + 255·(255 − a)) / 255 ≤ 255.
                u8::try_from((luma * alpha + 255 * (255 - alpha)) / 255).unwrap_or(u8::MAX)
            }
            _ => u8::MAX,
        })
        .collect();
    GrayImage::from_raw(width, height, grey).unwrap_or_default()
}

/// `grey` shrunk by the smallest integer factor that fits it in
/// [`WORK_PIXELS`], each pixel the mean of its block (a box filter: every
/// source pixel counts once, so thin modules blur instead of vanishing).
fn shrink_to_budget(grey: GrayImage) -> GrayImage {
    let (width, height) = (u64::from(grey.width()), u64::from(grey.height()));
    let mut factor: u64 = 1;
    while (width / factor) * (height / factor) > WORK_PIXELS {
        factor += 1;
    }
    if factor == 1 {
        return grey;
    }
    let (Ok(k), Ok(w)) = (usize::try_from(factor), usize::try_from(width)) else {
        return grey;
    };
    let out_w = w / k;
    let mut out = Vec::with_capacity(out_w * (grey.as_raw().len() / w / k));
    let mut sums = vec![0u32; out_w];
    for band in grey.as_raw().chunks_exact(w * k) {
        sums.fill(0);
        for row in band.chunks_exact(w) {
            for (sum, block) in sums.iter_mut().zip(row.chunks_exact(k)) {
                *sum += block.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        let area = u32::try_from(k * k).unwrap_or(u32::MAX);
        out.extend(
            sums.iter()
                .map(|&sum| u8::try_from(sum / area).unwrap_or(u8::MAX)),
        );
    }
    let out_h = out.len() / out_w.max(1);
    let (Ok(ow), Ok(oh)) = (u32::try_from(out_w), u32::try_from(out_h)) else {
        return grey;
    };
    GrayImage::from_raw(ow, oh, out).unwrap_or(grey)
}

/// One decoded QR code: its text and where it is.
#[derive(Debug)]
struct Code {
    text: String,
    left: i32,
    top: i32,
    bottom: i32,
}

/// How a pass turns grey pixels into the dark/light bitmap the detector
/// reads.
#[derive(Clone, Copy, Debug)]
enum Threshold {
    /// One threshold for the whole image (Otsu's): screenshots, and photos
    /// with even light.
    Global,
    /// A share of the local mean: uneven light, and pages where the code
    /// sits on a panel of another shade than the rest.
    LocalMean,
}

/// The decoded codes of `work`, deduplicated by text, in reading order.
///
/// A fixed list of passes, each one detection over the whole image: the
/// global threshold then the local-mean one, dark modules on light; only
/// when those find nothing, the same two with light modules on dark (dark
/// mode). At most four passes over at most [`WORK_PIXELS`] pixels.
fn scan(work: &GrayImage) -> Vec<Code> {
    let means = local_means(work);
    let otsu = otsu_threshold(work);
    let mut codes = Vec::new();
    for inverted in [false, true] {
        for threshold in [Threshold::Global, Threshold::LocalMean] {
            for code in detect(work, &means, otsu, threshold, inverted) {
                if !codes.iter().any(|known: &Code| known.text == code.text) {
                    codes.push(code);
                }
            }
        }
        if !codes.is_empty() {
            break;
        }
    }
    reading_order(codes)
}

/// One pass: the bitmap of `threshold` (of the negative when `inverted`),
/// then the codes the detector finds and decodes in it.
fn detect(
    work: &GrayImage,
    means: &[u8],
    otsu: u8,
    threshold: Threshold,
    inverted: bool,
) -> Vec<Code> {
    let (Ok(width), Ok(height)) = (
        usize::try_from(work.width()),
        usize::try_from(work.height()),
    ) else {
        return Vec::new();
    };
    let pixels = work.as_raw();
    let dark = |x: usize, y: usize| -> bool {
        let at = y * width + x;
        let (Some(&pixel), Some(&mean)) = (pixels.get(at), means.get(at)) else {
            return false;
        };
        let (pixel, mean, otsu) = if inverted {
            (255 - pixel, 255 - mean, 255 - otsu)
        } else {
            (pixel, mean, otsu)
        };
        match threshold {
            Threshold::Global if inverted => pixel < otsu,
            Threshold::Global => pixel <= otsu,
            Threshold::LocalMean => u32::from(pixel) * 100 < u32::from(mean) * MEAN_PERCENT,
        }
    };
    // rqrr pairs every finder-pattern candidate with every other it could
    // form a code with, copying the whole bitmap for each try: an image
    // tiled with finder patterns (a few KiB of PNG) would keep it busy for
    // minutes. Counting the candidates first bounds that work.
    if finder_candidates(width, height, &dark) > MAX_FINDER_CANDIDATES {
        return Vec::new();
    }
    // rqrr is third-party code fed with pixels from the request: should a
    // geometry corner case panic in it, that pass finds nothing rather than
    // taking the request (and its worker) down.
    catch_unwind(AssertUnwindSafe(|| {
        let mut prepared = rqrr::PreparedImage::prepare_from_bitmap(width, height, dark);
        prepared
            .detect_grids()
            .into_iter()
            .filter_map(|grid| {
                let (_, text) = grid.decode().ok()?;
                let xs = grid.bounds.iter().map(|p| p.x);
                let ys = grid.bounds.iter().map(|p| p.y);
                Some(Code {
                    text,
                    left: xs.min().unwrap_or(0),
                    top: ys.clone().min().unwrap_or(0),
                    bottom: ys.max().unwrap_or(0),
                })
            })
            .collect()
    }))
    .unwrap_or_default()
}

/// Finder patterns (three per code) a pass lets rqrr work on: ten codes
/// in one image. rqrr's cost grows with the square of the candidates and
/// more with their alignment: 25 in a grid took 46 ms a pass, 9 took 23.
const MAX_FINDER_CANDIDATES: usize = 30;

/// An estimate, from above, of the finder patterns rqrr will find in the
/// bitmap `dark`: the row runs of dark-light-dark-light-dark in proportion
/// 1:1:3:1:1 (rqrr's own test and tolerance), those whose middle run
/// overlaps one of the row above counted once. One read of the bitmap.
fn finder_candidates(width: usize, height: usize, dark: &impl Fn(usize, usize) -> bool) -> usize {
    let mut count = 0;
    let mut above: Vec<(usize, usize)> = Vec::new();
    let mut here: Vec<(usize, usize)> = Vec::new();
    for y in 0..height {
        here.clear();
        let mut runs = [0usize; 5];
        let mut changes = 0usize;
        let mut run = 0usize;
        let mut last = dark(0, y);
        // One virtual light pixel past the end closes a pattern on the edge.
        for x in 0..=width {
            let colour = x < width && dark(x, y);
            if colour == last {
                run += 1;
                continue;
            }
            runs.rotate_left(1);
            if let Some(slot) = runs.last_mut() {
                *slot = run;
            }
            run = 1;
            last = colour;
            changes += 1;
            if !colour && changes >= 5 && is_finder_run(&runs) {
                let [l2, l1, stone, r1, r2] = runs;
                let right = x.saturating_sub(r1 + r2);
                let left = right.saturating_sub(stone);
                // The row below a counted one continues its pattern;
                // otherwise the pattern must also hold down its column.
                let continued = above.iter().any(|&(l, r)| left < r && l < right);
                let reach = 2 * (l2 + l1 + stone + r1 + r2);
                if continued || is_finder_column(dark, (left + right) / 2, y, height, reach) {
                    count += usize::from(!continued);
                    here.push((left, right));
                }
            }
        }
        std::mem::swap(&mut above, &mut here);
    }
    count
}

/// Whether column `x`, from the row `y` of a row pattern, reads
/// dark-light-dark-light-dark in proportion 1:1:3:1:1 too (the middle dark
/// run starting at `y`), each run walked at most `reach` pixels.
fn is_finder_column(
    dark: &impl Fn(usize, usize) -> bool,
    x: usize,
    y: usize,
    height: usize,
    reach: usize,
) -> bool {
    let run_down = |from: usize, want: bool| {
        (from..height.min(from + reach))
            .take_while(|&row| dark(x, row) == want)
            .count()
    };
    let run_up = |from: usize, want: bool| {
        (from.saturating_sub(reach)..from)
            .rev()
            .take_while(|&row| dark(x, row) == want)
            .count()
    };
    let stone = run_down(y, true);
    let below_light = run_down(y + stone, false);
    let below_dark = run_down(y + stone + below_light, true);
    let above_light = run_up(y, false);
    let above_dark = run_up(y.saturating_sub(above_light), true);
    is_finder_run(&[above_dark, above_light, stone, below_light, below_dark])
}

/// rqrr's 1:1:3:1:1 test: each run within 3/4 of a module of its share.
fn is_finder_run(runs: &[usize; 5]) -> bool {
    let [a, b, c, d, e] = *runs;
    let module = (a + b + d + e) / 4;
    let err = module * 3 / 4;
    [(a, 1), (b, 1), (c, 3), (d, 1), (e, 1)]
        .iter()
        .all(|&(run, share)| run + err >= share * module && run <= share * module + err)
}

/// Otsu's threshold of `work`: the grey level that best splits its
/// histogram in two classes. Pixels at or under it are dark.
fn otsu_threshold(work: &GrayImage) -> u8 {
    let mut histogram = [0u64; 256];
    for &pixel in work.as_raw() {
        if let Some(count) = histogram.get_mut(usize::from(pixel)) {
            *count += 1;
        }
    }
    let total: u64 = histogram.iter().sum();
    let weighted: u64 = (0u64..).zip(histogram.iter()).map(|(v, &n)| v * n).sum();
    let (mut below, mut below_weighted) = (0u64, 0u64);
    let (mut best, mut best_variance) = (127u8, 0f64);
    for (level, &count) in (0u8..=255).zip(histogram.iter()) {
        below += count;
        below_weighted += u64::from(level) * count;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        #[allow(clippy::cast_precision_loss)] // counts ≤ 2^32: exact enough
        let (b, a) = (below as f64, above as f64);
        #[allow(clippy::cast_precision_loss)]
        let mean_below = below_weighted as f64 / b;
        #[allow(clippy::cast_precision_loss)]
        let mean_above = (weighted - below_weighted) as f64 / a;
        let variance = b * a * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            best_variance = variance;
            best = level;
        }
    }
    best
}

/// The mean of each pixel's (2·[`MEAN_RADIUS`]+1)² window, clipped at the
/// edges: a box filter, rows then columns, with running sums (linear in
/// the pixels whatever the radius).
fn local_means(work: &GrayImage) -> Vec<u8> {
    let Ok(width) = usize::try_from(work.width()) else {
        return Vec::new();
    };
    if width == 0 {
        return Vec::new();
    }
    let mut rows_mean = Vec::with_capacity(work.as_raw().len());
    let mut prefix = vec![0u32; width + 1];
    for row in work.as_raw().chunks_exact(width) {
        let mut acc = 0u32;
        for (slot, &pixel) in prefix.iter_mut().skip(1).zip(row) {
            acc += u32::from(pixel);
            *slot = acc;
        }
        rows_mean.extend((0..width).map(|x| {
            let lo = x.saturating_sub(MEAN_RADIUS);
            let hi = (x + MEAN_RADIUS + 1).min(width);
            let sum = prefix.get(hi).unwrap_or(&0) - prefix.get(lo).unwrap_or(&0);
            let n = u32::try_from(hi - lo).unwrap_or(1).max(1);
            u8::try_from(sum / n).unwrap_or(u8::MAX)
        }));
    }
    let rows: Vec<&[u8]> = rows_mean.chunks_exact(width).collect();
    let mut means = Vec::with_capacity(rows_mean.len());
    let mut sums = vec![0u32; width];
    let mut count = 0u32;
    // Prime the window with the rows above the first centre's bottom edge.
    for row in rows.iter().take(MEAN_RADIUS) {
        add_row(&mut sums, row, true);
        count += 1;
    }
    for y in 0..rows.len() {
        if let Some(row) = rows.get(y + MEAN_RADIUS) {
            add_row(&mut sums, row, true);
            count += 1;
        }
        if let Some(row) = y.checked_sub(MEAN_RADIUS + 1).and_then(|i| rows.get(i)) {
            add_row(&mut sums, row, false);
            count -= 1;
        }
        let n = count.max(1);
        means.extend(
            sums.iter()
                .map(|&sum| u8::try_from(sum / n).unwrap_or(u8::MAX)),
        );
    }
    means
}

fn add_row(sums: &mut [u32], row: &[u8], add: bool) {
    for (sum, &value) in sums.iter_mut().zip(row) {
        if add {
            *sum += u32::from(value);
        } else {
            *sum -= u32::from(value);
        }
    }
}

/// `codes` in reading order: rows top to bottom, a code joining the
/// current row when its top is above the bottom of the row's first code,
/// then each row left to right. Deterministic for a given image, whichever
/// pass found which code.
fn reading_order(mut codes: Vec<Code>) -> Vec<Code> {
    codes.sort_by_key(|code| (code.top, code.left));
    let mut rows: Vec<Vec<Code>> = Vec::new();
    for code in codes {
        match rows.last_mut() {
            Some(row) if row.first().is_some_and(|first| code.top < first.bottom) => {
                row.push(code);
            }
            _ => rows.push(vec![code]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by_key(|code| code.left);
            row
        })
        .collect()
}
