#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpus of the fuzz targets, fuzz/corpus/<target>/.

The seeds are small, meaningful starting points for libFuzzer's mutations: tiny valid images of
each format and variant the decoder handles (and cut-off ones), texts that reach each branch of
the CLIP tokenizer, GPT-2/OPT id sequences and prompts, and serialized requests of each kind.
The outputs are committed; run this again only to change them (it replaces the generated files
and leaves any other file, such as a saved crash input, in place):

    /usr/bin/python3 fuzz/make_seeds.py            # needs Debian's python3-pil and python3-numpy

GPT-2 ids are looked up in ../shared/data/gpt2/vocab.json ($RETRACE_SHARED_DATA overrides).
Requests are written in protobuf's wire format by hand (no generated Python code needed); the
field numbers are those of proto/retrace/v1/retrace.proto and index_wire.proto.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
SHARED = os.environ.get("RETRACE_SHARED_DATA") or os.path.join(ROOT, "..", "..", "shared", "data")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ----------------------------------------------------------------------------------------------
# Images

def quadrants(width, height, alpha=False):
    """Red, green, blue and yellow quadrants (as tests/unit/image/test_images.h draws them)."""
    rgb = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    rgb[:h2, :w2] = (255, 0, 0)
    rgb[:h2, w2:] = (0, 255, 0)
    rgb[h2:, :w2] = (0, 0, 255)
    rgb[h2:, w2:] = (255, 255, 0)
    if not alpha:
        return Image.fromarray(rgb, "RGB")
    a = np.full((height, width, 1), 255, np.uint8)
    a[:, : width // 4] = 0  # a transparent band, composited over white
    a[:, width // 4 : width // 2] = 128
    return Image.fromarray(np.concatenate([rgb, a], axis=2), "RGBA")


def encode(image, fmt, **params):
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width, height):
    """A well-formed-looking PNG whose IHDR declares width x height (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


def bmp(width, height, bits, rows, palette=b"", compression=0, top_down=False):
    """A BITMAPINFOHEADER BMP around already-encoded pixel `rows`."""
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits,
                       compression, len(rows), 2835, 2835, len(palette) // 4, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset)
    return header + info + palette + rows


def exif_orientation(value):
    """An EXIF block (TIFF, little-endian) with IFD0 holding Orientation = value."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, value, 0) + b"\0\0\0\0"
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd


def images():
    t = "image_decode"
    jpeg = encode(quadrants(32, 24), "JPEG", quality=80)
    write(t, "jpeg_quadrants_32x24.jpg", jpeg)
    write(t, "jpeg_gray_16x16.jpg", encode(quadrants(16, 16).convert("L"), "JPEG", quality=70))
    write(t, "jpeg_progressive_24x16.jpg",
          encode(quadrants(24, 16), "JPEG", quality=60, progressive=True))
    write(t, "jpeg_cmyk_8x8.jpg", encode(quadrants(8, 8).convert("CMYK"), "JPEG", quality=60))
    write(t, "jpeg_exif_orientation6_16x8.jpg",
          encode(quadrants(16, 8), "JPEG", quality=60, exif=exif_orientation(6)))
    write(t, "jpeg_exif_orientation3_8x8.jpg",
          encode(quadrants(8, 8), "JPEG", quality=60, exif=exif_orientation(3)))
    scan = jpeg.index(b"\xff\xda")
    write(t, "jpeg_truncated_in_scan.jpg", jpeg[: (scan + len(jpeg)) // 2])
    write(t, "jpeg_no_eoi.jpg", jpeg[:-2])
    write(t, "jpeg_header_only.jpg", jpeg[:200])

    png = encode(quadrants(16, 12), "PNG")
    write(t, "png_rgb_16x12.png", png)
    write(t, "png_rgba_16x16.png", encode(quadrants(16, 16, alpha=True), "PNG"))
    write(t, "png_gray_8x8.png", encode(quadrants(8, 8).convert("L"), "PNG"))
    write(t, "png_palette_8x8.png", encode(quadrants(8, 8).convert("P"), "PNG"))
    gray16 = Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "I;16")
    write(t, "png_gray16_8x8.png", encode(gray16, "PNG"))
    write(t, "png_interlaced_8x8.png", encode(quadrants(8, 8), "PNG", interlace=1))
    write(t, "png_truncated_in_idat.png", png[: len(png) - 20])
    write(t, "png_declares_100000x100000.png", png_declaring(100000, 100000))

    write(t, "webp_lossy_16x16.webp", encode(quadrants(16, 16), "WEBP", quality=50))
    lossless = encode(quadrants(16, 16), "WEBP", lossless=True)
    write(t, "webp_lossless_16x16.webp", lossless)
    write(t, "webp_alpha_16x16.webp", encode(quadrants(16, 16, alpha=True), "WEBP", quality=50))
    write(t, "webp_truncated.webp", lossless[: len(lossless) - 8])

    write(t, "bmp_24bit_12x8.bmp", encode(quadrants(12, 8), "BMP"))
    write(t, "bmp_8bit_palette_8x8.bmp", encode(quadrants(8, 8).convert("P"), "BMP"))
    write(t, "bmp_1bit_8x4.bmp", encode(quadrants(8, 4).convert("1"), "BMP"))
    # 4x2, 24-bit, rows stored top-down (negative height); rows padded to 4 bytes.
    row = bytes([0, 0, 255] * 2 + [0, 255, 0] * 2)
    write(t, "bmp_top_down_4x2.bmp", bmp(4, 2, 24, row + row, top_down=True))
    # 4x2 RLE8: two runs per row, end of line, end of bitmap; a 2-colour palette.
    palette = bytes([0, 0, 255, 0, 255, 0, 0, 0])
    rle = bytes([2, 0, 2, 1, 0, 0, 2, 1, 2, 0, 0, 0, 0, 1])
    write(t, "bmp_rle8_4x2.bmp", bmp(4, 2, 8, rle, palette=palette, compression=1))
    write(t, "bmp_truncated.bmp", encode(quadrants(12, 8), "BMP")[:-30])

    write(t, "not_gif.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04"
          b"\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
    write(t, "not_svg.svg", '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')


# ----------------------------------------------------------------------------------------------
# CLIP texts

CLIP_TEXTS = {
    "plain.txt": "a photo of a cat",
    "sketch_query.txt": "A Sketch of a HORSE, jumping!!",
    "html_entities.txt": "caf&eacute; &amp;lt;b&gt; &#39;quoted&#x27; &notit; &#0; &#xD800; &ampx",
    "contractions.txt": "it's they'll we've I'm you'd don't 'TIS",
    "special_tokens.txt": "<|startoftext|>hello<|endoftext|> <|ENDOFTEXT|>",
    "unicode_case.txt": "İstanbul ΣΑΣ ὈΔΥΣΣΕΎΣ straße ǅemal",
    "cjk_emoji.txt": "猫の写真 🐴🏇 👍🏽 中文",
    "digits_symbols.txt": "2024-05-20 12.5% $1,000 ... ???!!! ((x))",
    "whitespace.txt": "  \t tabs\tand\nnew\r\nlines \u00a0nbsp\u2003em\u3000ideographic  ",
    "combining.txt": "cafe\u0301 a\u0345 n\u0303 \u1fb3",
    "long_word.txt": "supercalifragilistic" * 12,
    "ftfy_mojibake.txt": "cafÃ© “curly” ﬁ ｆｕｌｌ",
}


def clip_texts():
    for name, text in CLIP_TEXTS.items():
        write("clip_tokenizer", name, text)
    write("clip_tokenizer", "invalid_utf8.bin", b"ok \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end")
    write("clip_tokenizer", "nul_and_controls.bin", b"a\x00b\x01c\x1cd\x1f e\x7f")


# ----------------------------------------------------------------------------------------------
# GPT-2 / OPT ids and prompts (first byte: bit 0 OPT, bit 1 skip_special, bit 2 encode text,
# bit 3 int32 ids; see fuzz/gpt2_decoder_fuzzer.cc)

def gpt2_seeds():
    t = "gpt2_decoder"
    u16 = lambda ids: b"".join(struct.pack("<H", i) for i in ids)
    i32 = lambda ids: b"".join(struct.pack("<i", i) for i in ids)
    # HF's test: facebook/opt-350m encodes "A photo of a cat" as [2, 250, 1345, 9, 10, 4758].
    write(t, "opt_a_photo_of_a_cat.ids", bytes([1]) + u16([2, 250, 1345, 9, 10, 4758]))
    write(t, "opt_skip_special.ids", bytes([3]) + u16([0, 2, 250, 1345, 50118, 1, 50264, 2]))
    write(t, "gpt2_hello_world.ids", bytes([0]) + u16([15496, 995, 50256]))
    write(t, "gpt2_unknown_id.ids", bytes([0]) + u16([15496, 60000, 995]))
    write(t, "opt_int32_negative.ids", bytes([9]) + i32([2, 250, -1, 4758]))
    write(t, "opt_int32_large.ids", bytes([9]) + i32([2, 50264, 50265, 2**31 - 1]))
    vocab_path = os.path.join(SHARED, "gpt2", "vocab.json")
    if os.path.exists(vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        # bytes_to_unicode, as GPT-2's encoder.py defines it.
        printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
            list(range(0xAE, 0x100))
        table, extra = {}, 0
        for b in range(256):
            if b in printable:
                table[b] = chr(b)
            else:
                table[b] = chr(256 + extra)
                extra += 1
        byte_ids = [vocab[table[b]] for b in "🐴é".encode("utf-8")]
        # A 4-byte character split over byte tokens, then cut off before its last byte.
        write(t, "gpt2_split_utf8.ids", bytes([0]) + u16(byte_ids))
        write(t, "gpt2_cut_utf8.ids", bytes([0]) + u16(byte_ids[:3]))
    else:
        print(f"make_seeds.py: {vocab_path} not found; skipping the byte-token seeds",
              file=sys.stderr)
    for name, text in {
        "prompt_a_photo_of.txt": "a photo of",
        "prompt_question.txt": "Question: what is in the picture? Answer:",
        "prompt_spaces.txt": "  two  spaces\n\nnewlines\t tab 's 'll 123 4567 !!",
        "prompt_special_text.txt": "</s><s><|endoftext|><pad> madeupword0001",
        "prompt_unicode.txt": "café 猫 🐴 Ω ﬁ",
    }.items():
        write(t, name, bytes([4 | 1]) + text.encode("utf-8"))
    write(t, "prompt_invalid_utf8.txt", bytes([4]) + b"abc \xff\xc3 \xe2\x82 def")


# ----------------------------------------------------------------------------------------------
# Requests (first byte: 0 Search, 1 Caption, 2 IndexRequestWire, 3 Delete)

def varint(n):
    if n < 0:
        n += 1 << 64  # int32 negatives are ten-byte varints
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_varint(number, value):
    return varint(number << 3) + varint(value)


def f_bytes(number, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return varint(number << 3 | 2) + varint(len(data)) + data


def f_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


def requests():
    t = "request_conversion"
    tiny_png = encode(quadrants(4, 4), "PNG")
    provenance = f_varint(1, 50) + f_float(2, 1.0) + f_float(3, 0.1) + f_float(4, 0.1)
    # SearchRequest: collection 1, image 2, text 3, embedding 4, mode 5, top_k 6,
    # query_caption 7, provenance 8, hybrid 9.
    write(t, "search_text_caption_match.pb",
          b"\0" + f_bytes(1, "pacs") + f_bytes(3, "a horse") + f_varint(5, 1) + f_varint(6, 5))
    write(t, "search_text_provenance.pb",
          b"\0" + f_bytes(1, "pacs") + f_bytes(3, "a sketch of a dog") + f_varint(5, 2) +
          f_varint(6, 10) + f_bytes(7, "a dog") + f_bytes(8, provenance))
    embedding = f_bytes(1, b"".join(struct.pack("<f", v) for v in (0.5, -0.25, 0.0, 1.0)))
    write(t, "search_embedding_hybrid.pb",
          b"\0" + f_bytes(1, "pacs") + f_bytes(4, embedding) + f_varint(5, 3) +
          f_bytes(8, provenance) + f_bytes(9, f_varint(1, 60)))
    write(t, "search_image.pb", b"\0" + f_bytes(1, "pacs") + f_bytes(2, tiny_png) + f_varint(5, 2))
    write(t, "search_no_query.pb", b"\0" + f_bytes(1, "pacs") + f_varint(6, 3))
    write(t, "search_bad_bounds.pb",
          b"\0" + f_bytes(1, "-bad name") + f_bytes(3, "x") + f_varint(5, 2) + f_varint(6, -1) +
          f_bytes(8, f_varint(1, 1001) + f_float(2, float("nan"))) + f_bytes(9, f_varint(1, -5)))
    write(t, "search_unknown_mode.pb", b"\0" + f_bytes(1, "pacs") + f_bytes(3, "x") + f_varint(5, 7))
    # CaptionRequest: images 1, options 2 {max_new_tokens 1, num_beams 2, length_penalty 3,
    # min_new_tokens 4, no_repeat_ngram_size 5, repetition_penalty 6, prompt 7}.
    options = (f_varint(1, 12) + f_varint(2, 3) + f_float(3, 1.0) + f_varint(4, 2) +
               f_varint(5, 2) + f_float(6, 1.2) + f_bytes(7, "a photo of"))
    write(t, "caption_options.pb", b"\1" + f_bytes(1, tiny_png) + f_bytes(2, options))
    write(t, "caption_no_images.pb", b"\1" + f_bytes(2, f_varint(2, 9)))
    # IndexRequestWire: collection 1, items 2 {id 1, image 2, caption 3, attributes 4 {key 1,
    # value 2}}.
    def item(id_, image=b"img", caption=b"", attributes=()):
        body = f_bytes(1, id_) + f_bytes(2, image) + f_bytes(3, caption)
        for key, value in attributes:
            body += f_bytes(4, f_bytes(1, key) + f_bytes(2, value))
        return f_bytes(2, body)
    write(t, "index_one_item.pb",
          b"\2" + f_bytes(1, "pacs") +
          item("photo/dog/1.jpg", tiny_png, "a dog", [("domain", "photo"), ("label", "dog")]))
    write(t, "index_mixed_items.pb",
          b"\2" + f_bytes(1, "pacs") + item("a.jpg") + item("a.jpg") + item(b"bad\xffid") +
          item("tab\tid") + item("no-image.jpg", b"") + item("cap.jpg", caption=b"bad \xc3") +
          item("attr.jpg", attributes=[(b"k\xfe", b"v"), ("", "empty key"), ("k", "v1"),
                                       ("k", "v2")]))
    write(t, "index_long_fields.pb",
          b"\2" + f_bytes(1, "pacs") +
          item("x" * 513) + item("long-caption.jpg", caption="c" * 2049) +
          item("long-value.jpg", attributes=[("key", "v" * 1000)]))
    # DeleteRequest: collection 1, ids 2.
    write(t, "delete_ids.pb", b"\3" + f_bytes(1, "pacs") + f_bytes(2, "a.jpg") + f_bytes(2, "b.jpg"))
    write(t, "delete_bad_ids.pb",
          b"\3" + f_bytes(1, "pacs") + f_bytes(2, "") + f_bytes(2, "nul\0id") + f_bytes(2, "x" * 600))


def main():
    images()
    clip_texts()
    gpt2_seeds()
    requests()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print(f"make_seeds.py: wrote the seeds under {CORPUS} ({total} bytes in all)")


if __name__ == "__main__":
    main()
