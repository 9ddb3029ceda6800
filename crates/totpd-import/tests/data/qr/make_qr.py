#!/usr/bin/env python3
"""Writes the QR fixtures of the image reader's tests, and expected.json.

Every image is drawn here with Pillow; every QR code is encoded by `segno`
(one by `qrcode`), and the expected codes are computed with Python's `hmac`
module, so nothing in this repository takes part in making the fixtures.

    python3 -m venv venv && venv/bin/pip install segno qrcode Pillow
    venv/bin/python make_qr.py

The screenshots are 1920x1080 pages like a service's "set up two-factor
authentication" page: a header bar, text blocks, buttons, and the QR code
off-centre with its quiet zone. The variants are what people upload: the
page at 1x, zoomed out (0.5x) and in (3x), tilted, saved as a low-quality
JPEG, in dark mode (light modules on a dark page), two codes on one page, a
WebP, a 4K (HiDPI) screenshot and a phone photo of a screen (perspective,
blur, noise). The refusals: a page without a QR code, one whose only code
is a URL, a decompression bomb (a PNG declaring 50000x50000 pixels in a
few hundred bytes) and a truncated PNG.

The script is deterministic (fixed seeds, fixed encoder settings): rerunning
it with the same library versions gives the same files.
"""

import base64
import hashlib
import hmac
import io
import json
import random
import struct
import urllib.parse
import zlib
from pathlib import Path

import qrcode
import segno
from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT = Path(__file__).resolve().parent
W, H = 1920, 1080
TIMES = [59, 1111111109, 2000000000]

# Test secrets only.
A = {
    "uri": "otpauth://totp/Z%C3%BCrich%20Bank:j%C3%B6rg%40example.com"
    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Z%C3%BCrich%20Bank",
    "label": "jörg@example.com",
    "issuer": "Zürich Bank",
    "secret": b"12345678901234567890",
    "algorithm": "SHA1",
    "digits": 6,
    "period": 30,
}
B = {
    "uri": "otpauth://totp/carol?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"
    "&algorithm=SHA256&digits=8&period=60",
    "label": "carol",
    "issuer": None,
    "secret": b"12345678901234567890123456789012",
    "algorithm": "SHA256",
    "digits": 8,
    "period": 60,
}
C = {
    "uri": "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub",
    "label": "alice",
    "issuer": "GitHub",
    "secret": base64.b32decode("JBSWY3DPEHPK3PXP"),
    "algorithm": "SHA1",
    "digits": 6,
    "period": 30,
}
# Two credentials of one Google Authenticator "Transfer accounts" code.
M1 = {
    "label": "erin@example.com",
    "issuer": "Example",
    "secret": b"migration-secret-one",
    "algorithm": "SHA1",
    "digits": 6,
    "period": 30,
}
M2 = {
    "label": "frank",
    "issuer": "Ünïcode Co",
    "secret": b"migration-secret-two-32-bytes!!!",
    "algorithm": "SHA256",
    "digits": 8,
    "period": 30,
}
URL = "https://example.com/"


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, value):
    """One protobuf field: bytes/str length-delimited, int as a varint."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def migration_uri(entries):
    """A MigrationPayload (Google's migration.proto) with `entries`, TOTP."""
    algorithms = {"SHA1": 1, "SHA256": 2, "SHA512": 3}
    digits = {6: 1, 8: 2}
    payload = b""
    for e in entries:
        name = f"{e['issuer']}:{e['label']}" if e["issuer"] else e["label"]
        params = (
            field(1, e["secret"])
            + field(2, name)
            + field(3, e["issuer"] or "")
            + field(4, algorithms[e["algorithm"]])
            + field(5, digits[e["digits"]])
            + field(6, 2)  # OTP_TYPE_TOTP
        )
        payload += field(1, params)
    payload += field(2, 1) + field(3, 1) + field(4, 0) + field(5, 4242)
    data = urllib.parse.quote(base64.b64encode(payload).decode(), safe="")
    return f"otpauth-migration://offline?data={data}"


M = {"uri": migration_uri([M1, M2]), "entries": [M1, M2]}


def totp(secret, algorithm, digits, period, t):
    """RFC 6238 with the standard library's HMAC."""
    digest = hmac.new(
        secret, struct.pack(">Q", t // period), getattr(hashlib, algorithm.lower())
    ).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def expected(e):
    return {
        "label": e["label"],
        "issuer": e["issuer"],
        "type": "totp",
        "algorithm": e["algorithm"],
        "digits": e["digits"],
        "period": e["period"],
        "codes": {str(t): totp(e["secret"], e["algorithm"], e["digits"], e["period"], t) for t in TIMES},
    }


def entries_of(code):
    return [expected(e) for e in code.get("entries", [code])]


def font(size):
    return ImageFont.load_default(size=size)


def segno_qr(uri, scale, dark="#000000", light="#ffffff"):
    buf = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(
        buf, kind="png", scale=scale, border=4, dark=dark, light=light
    )
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def qrcode_qr(uri, box):
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box, border=4)
    qr.add_data(uri)
    qr.make(fit=True)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")


def page(dark=False, size=(W, H), k=1):
    """A two-factor setup page, `k` times the CSS pixel size."""
    bg, fg, muted, bar, accent = (
        ("#121212", "#e8e8e8", "#9a9a9a", "#1f1f24", "#3d7bfd")
        if dark
        else ("#f6f7f9", "#1b1f24", "#5b636e", "#24292f", "#1f6feb")
    )
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 64 * k], fill=bar)
    d.text((32 * k, 18 * k), "Example Cloud", fill="#ffffff", font=font(24 * k))
    for i, item in enumerate(["Dashboard", "Projects", "Billing", "Settings"]):
        d.text(((400 + 150 * i) * k, 22 * k), item, fill="#c9d1d9", font=font(18 * k))
    d.ellipse([1840 * k, 12 * k, 1880 * k, 52 * k], fill="#6e7781")
    card = "#1e1e1e" if dark else "#ffffff"
    d.rounded_rectangle([160 * k, 110 * k, 1760 * k, 1030 * k], radius=12 * k, fill=card,
                        outline="#30363d" if dark else "#d0d7de")
    d.text((200 * k, 140 * k), "Set up two-factor authentication", fill=fg, font=font(34 * k))
    lines = [
        "1. Install an authenticator app on your phone.",
        "2. Scan the QR code with the app, or enter the setup key by hand.",
        "3. Enter the 6-digit code the app shows to finish.",
        "Keep your recovery codes somewhere safe: they are the only way in",
        "if you lose your phone.",
    ]
    for i, line in enumerate(lines):
        d.text((1000 * k, (240 + 44 * i) * k), line, fill=muted, font=font(20 * k))
    d.text((1000 * k, 500 * k), "Verification code", fill=fg, font=font(20 * k))
    d.rounded_rectangle([1000 * k, 535 * k, 1400 * k, 585 * k], radius=6 * k, fill=bg,
                        outline="#8c959f")
    d.rounded_rectangle([1000 * k, 620 * k, 1180 * k, 670 * k], radius=6 * k, fill=accent)
    d.text((1040 * k, 633 * k), "Verify", fill="#ffffff", font=font(20 * k))
    d.rounded_rectangle([1200 * k, 620 * k, 1380 * k, 670 * k], radius=6 * k, fill=card,
                        outline="#8c959f")
    d.text((1245 * k, 633 * k), "Cancel", fill=fg, font=font(20 * k))
    d.text((200 * k, 960 * k), "Setup key: XXXX XXXX XXXX XXXX", fill=muted, font=font(18 * k))
    return img


def save_png(img, name):
    img.save(OUT / name, optimize=True)


def shot(code_img, at, dark=False):
    img = page(dark)
    img.paste(code_img, at)
    return img


fixtures = {}

# 1x: a ~200 px code, 4 px modules.
img = shot(segno_qr(A["uri"], 4), (260, 300))
save_png(img, "shot_1x.png")
fixtures["shot_1x.png"] = entries_of(A)
img.save(OUT / "shot_q60.jpg", quality=60)
fixtures["shot_q60.jpg"] = entries_of(A)

# 0.5x: the 1x page zoomed out, resampled like a browser does (2 px modules,
# antialiased edges), then on a full 1920x1080 screen.
small = page().resize((W // 2, H // 2), Image.LANCZOS)
small.paste(segno_qr(B["uri"], 4).resize((4 * 53 // 2, 4 * 53 // 2), Image.LANCZOS), (140, 150))
img = Image.new("RGB", (W, H), "#dfe3e8")
img.paste(small, (300, 200))
save_png(img, "shot_0.5x.png")
fixtures["shot_0.5x.png"] = entries_of(B)

# 3x: a migration batch (a larger code) at 12 px modules, ~750 px.
img = shot(segno_qr(M["uri"], 12), (200, 180))
save_png(img, "shot_3x.png")
fixtures["shot_3x.png"] = entries_of(M)

# Tilted 8 degrees (a screenshot of a rotated element).
code = segno_qr(B["uri"], 5).rotate(8, resample=Image.BICUBIC, expand=True, fillcolor="#ffffff")
img = shot(code, (280, 280))
save_png(img, "shot_rot8.png")
fixtures["shot_rot8.png"] = entries_of(B)

# Dark mode: light modules on a dark card.
img = shot(segno_qr(A["uri"], 4, dark="#e6e6e6", light="#1e1e1e"), (260, 300), dark=True)
save_png(img, "shot_dark.png")
fixtures["shot_dark.png"] = entries_of(A)

# Three codes on one page, read in rows top to bottom, each row left to
# right: A (top right) alone in the first row, then B and C side by side
# (C a little higher, but in the same row as B, so after it).
img = page()
img.paste(qrcode_qr(C["uri"], 4), (1450, 690))
img.paste(segno_qr(B["uri"], 4), (260, 720))
img.paste(segno_qr(A["uri"], 4), (1500, 200))
save_png(img, "shot_three.png")
fixtures["shot_three.png"] = entries_of(A) + entries_of(B) + entries_of(C)

img = page()
img.paste(segno_qr(URL, 6), (1450, 300))
img.paste(qrcode_qr(C["uri"], 5), (260, 320))
save_png(img, "shot_url_and_otp.png")
fixtures["shot_url_and_otp.png"] = entries_of(C) + [{"invalid": "not an otpauth"}]

# WebP (lossy, as browsers and chat apps save screenshots).
img = shot(segno_qr(M["uri"], 5), (300, 260))
img.save(OUT / "shot.webp", quality=80, method=4)
fixtures["shot.webp"] = entries_of(M)

# 4K (HiDPI) screenshot: the page at 2x, over the pixel budget, so the
# reader downscales it first.
img = page(size=(2 * W, 2 * H), k=2)
img.paste(segno_qr(C["uri"], 8), (520, 600))
save_png(img, "shot_4k.png")
fixtures["shot_4k.png"] = entries_of(C)

# A phone photo of a screen: perspective, blur, uneven light, sensor noise.
rng = random.Random(7)
screen = shot(segno_qr(A["uri"], 4), (260, 300)).crop((0, 0, 1400, 1080))
w, h = 1600, 1200
# Pillow's PERSPECTIVE maps output (x, y) to input coordinates.
src = [(-80, -40), (1480, 60), (1420, 1100), (-20, 1180)]
dst = [(0, 0), (w, 0), (w, h), (0, h)]


def perspective_coeffs(dst, src):
    import itertools

    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    # Gaussian elimination, 8x8.
    n = 8
    m = [r + [b] for r, b in zip(rows, rhs)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [a - f * b for a, b in zip(m[r], m[c])]
    return [m[i][n] / m[i][i] for i in range(n)]


photo = screen.transform((w, h), Image.PERSPECTIVE, perspective_coeffs(dst, src),
                         Image.BICUBIC, fillcolor="#3a3530")
photo = photo.filter(ImageFilter.GaussianBlur(1.3))
light = Image.linear_gradient("L").resize((w, h)).point(lambda v: 170 + v * 85 // 255)
photo = Image.composite(photo, Image.new("RGB", (w, h), "#000000"), light)
noise = Image.frombytes("L", (w, h), bytes(rng.randrange(256) for _ in range(w * h)))
photo = Image.blend(photo, Image.merge("RGB", [noise] * 3), 0.12)
photo.save(OUT / "photo.jpg", quality=82)
fixtures["photo.jpg"] = entries_of(A)

# Refusals.
save_png(page(), "shot_no_qr.png")
img = page()
img.paste(segno_qr(URL, 4), (260, 300))
save_png(img, "shot_url_only.png")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# 50000x50000 greyscale: 2.5 GB of pixels, a few hundred bytes of file.
bomb_rows = zlib.compressobj(9)
raw = bomb_rows.compress(b"\x00" * (50001 * 64)) + bomb_rows.flush()
bomb = (
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0))
    + png_chunk(b"IDAT", raw)
    + png_chunk(b"IEND", b"")
)
(OUT / "bomb.png").write_bytes(bomb)

whole = (OUT / "shot_1x.png").read_bytes()
(OUT / "truncated.png").write_bytes(whole[: len(whole) // 2])

(OUT / "expected.json").write_text(
    json.dumps({"times": TIMES, "fixtures": fixtures}, indent=1, ensure_ascii=False) + "\n"
)
