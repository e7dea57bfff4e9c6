"""Crafted inputs whose headers lie: each claims far more than it holds (or than is accepted).

Every builder returns `(bytes, format hint or None)`. Sizes are what a header *claims*; the files
themselves stay a few KB, except the ones named `real_*`, which really are large and show that
accepted-but-big inputs stay bounded. Used by tests/reliability/test_fuzz_bounded.py (CI) and
scripts/stress.py (bigger sizes).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np

HOUR = 3600
HUNDRED_MILLION = 100_000_000


# ---- audio ------------------------------------------------------------------------------------


def wav_header(channels: int, rate: int, bits: int, data_bytes: int, tag: int = 1) -> bytes:
    """A canonical 44-byte WAV header stating `data_bytes` of sample data."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    riff_size = min(0xFFFFFFFF, 36 + data_bytes)
    return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", min(0xFFFFFFFF, data_bytes)))


def wav_claiming_an_hour() -> tuple[bytes, str | None]:
    """48 kHz 16-bit stereo, header says one hour (691 MB), body holds one second."""
    rate, channels = 48000, 2
    body = (np.sin(np.arange(rate * channels) / 20) * 8000).astype("<i2").tobytes()
    return wav_header(channels, rate, 16, HOUR * rate * channels * 2) + body, None


def wav_with_absurd_fields(channels: int = 65535, rate: int = 4_000_000_000) -> tuple[bytes, str | None]:
    return wav_header(channels, rate, 16, 1 << 20) + bytes(4096), None


def real_wav(seconds: float, rate: int = 8000) -> tuple[bytes, str | None]:
    """A real unsigned 8-bit mono WAV of `seconds` (8 kB per second at 8 kHz): cheap to make at
    lengths of minutes to hours, and under the byte limit."""
    frames = int(seconds * rate)
    ramp = (np.arange(frames, dtype=np.uint32) * 7 % 251).astype(np.uint8).tobytes()
    return wav_header(1, rate, 8, frames) + ramp, None


def flac_claiming(total_samples: int, real_flac: bytes) -> tuple[bytes, str | None]:
    """A real FLAC whose STREAMINFO total-samples field (36 bits at byte 21.5) is rewritten."""
    field = int.from_bytes(real_flac[18:26], "big")
    patched = (field & ~((1 << 36) - 1)) | (total_samples & ((1 << 36) - 1))
    return real_flac[:18] + patched.to_bytes(8, "big") + real_flac[26:], None


# ---- images -----------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> tuple[bytes, str | None]:
    """A PNG whose IHDR states width x height, followed by a tiny (wrong) IDAT."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(bytes(1024))) + _png_chunk(b"IEND", b"")), None


def real_png_bomb(width: int, height: int) -> tuple[bytes, str | None]:
    """A real, valid 1-bit PNG of width x height: a few KB on disk, width*height pixels decoded."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b"")), None


def jpeg_claiming(width: int, height: int, real_jpeg: bytes) -> tuple[bytes, str | None]:
    """A real baseline JPEG whose SOF0 frame header is rewritten to width x height."""
    at = real_jpeg.index(b"\xff\xc0")
    size = struct.pack(">HH", height, width)
    return real_jpeg[:at + 5] + size + real_jpeg[at + 9:], None


def gif_claiming(width: int, height: int, real_gif: bytes) -> tuple[bytes, str | None]:
    """A real GIF whose logical screen and first image descriptor state width x height."""
    data = bytearray(real_gif)
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.index(b",", 13)
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data), None


# ---- 3D ---------------------------------------------------------------------------------------


def ply_claiming(vertices: int = HUNDRED_MILLION, faces: int = 0, binary: bool = True) -> tuple[bytes, str | None]:
    encoding = "binary_little_endian" if binary else "ascii"
    header = (f"ply\nformat {encoding} 1.0\nelement vertex {vertices}\nproperty float x\nproperty float y\n"
              f"property float z\nelement face {faces}\nproperty list uchar int vertex_indices\nend_header\n")
    body = bytes(1200) if binary else b"0 0 0\n1 0 0\n0 1 0\n" * 20
    return header.encode() + body, None


def off_claiming(vertices: int = HUNDRED_MILLION, faces: int = 0) -> tuple[bytes, str | None]:
    return f"OFF\n{vertices} {faces} 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n".encode(), None


def stl_claiming(triangles: int = HUNDRED_MILLION) -> tuple[bytes, str | None]:
    """Binary STL whose count says `triangles` but whose body holds 20."""
    return bytes(80) + struct.pack("<I", triangles) + bytes(50 * 20), "stl"


def obj_with_far_index(index: int = HUNDRED_MILLION) -> tuple[bytes, str | None]:
    return f"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 {index}\n".encode(), "obj"


def glb(document: dict, binary: bytes) -> bytes:
    """A GLB container around a glTF JSON document and one binary chunk."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\x00" * (-len(binary) % 4)
    chunks = (struct.pack("<I", len(text)) + b"JSON" + text + struct.pack("<I", len(binary)) + b"BIN\x00" + binary)
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def glb_accessor_claiming(count: int = HUNDRED_MILLION) -> tuple[bytes, str | None]:
    """One point primitive whose POSITION accessor claims `count` vertices in a 36-byte buffer."""
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "mode": 0}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": count, "type": "VEC3"}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}], "buffers": [{"byteLength": 36}],
    }
    return glb(document, np.eye(3, dtype="<f4").tobytes()), "glb"


def glb_deep_nodes(depth: int = 20_000) -> tuple[bytes, str | None]:
    """A node hierarchy `depth` levels deep (recursion in a scene-graph walker)."""
    nodes = [{"children": [i + 1]} for i in range(depth - 1)] + [{"mesh": 0}]
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": nodes,
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "mode": 0}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}], "buffers": [{"byteLength": 36}],
    }
    return glb(document, np.eye(3, dtype="<f4").tobytes()), "glb"


def npy_header(shape: tuple, descr: str = "<f8", fortran: bool = False) -> bytes:
    """A version-1 .npy header (magic, length, padded dict) for any claimed shape."""
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    pad = -(10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npy_claiming(shape: tuple = (HUNDRED_MILLION, 3)) -> tuple[bytes, str | None]:
    return npy_header(shape) + bytes(1200), "npy"


def _npz_of_zeros(rows: int, name: str = "xyz.npy") -> bytes:
    """An .npz holding one float64 (rows, 3) array of zeros, deflated (about 1000:1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as entry:
            entry.write(npy_header((rows, 3)))
            block = bytes(1 << 20)
            remaining = rows * 24
            while remaining > 0:
                entry.write(block[:min(len(block), remaining)])
                remaining -= len(block)
    return buffer.getvalue()


def real_npz_bomb(unpacked_mb: int = 250) -> tuple[bytes, str | None]:
    """A real zip bomb: `unpacked_mb` MB of zeros in a file of about a thousandth of that."""
    return _npz_of_zeros(unpacked_mb * (1 << 20) // 24), "npz"


def npz_lying_about_its_size(unpacked_mb: int = 64) -> tuple[bytes, str | None]:
    """A zip bomb whose central directory claims 1 KB while the stream inflates to far more."""
    data = bytearray(_npz_of_zeros(unpacked_mb * (1 << 20) // 24))
    entry = data.rindex(b"PK\x01\x02")  # the central directory record of the one member
    data[entry + 24:entry + 28] = struct.pack("<I", 1024)  # its uncompressed size
    return bytes(data), "npz"


def xyz_with_non_finite(rows: int = 64) -> tuple[bytes, str | None]:
    """A text cloud where most rows hold NaN, inf or 1e308 coordinates."""
    values = ["nan", "inf", "-inf", "1e308", "-1e308", "1e-320"]
    lines = [" ".join(values[(i + j) % len(values)] for j in range(3)) for i in range(rows)]
    return ("\n".join(lines) + "\n").encode(), "xyz"


# ---- named sets -------------------------------------------------------------------------------


AUDIO, IMAGE, POINTS = "cmcr.data.media:load_audio", "cmcr.data.media:load_image", "cmcr.data.media:load_points"
REFUSED = ("input_error",)

# name -> (loader target, builder(real samples) -> (data, format hint), the outcomes that are right).
# `real` holds the small valid files of `real_samples()`, which some builders patch. A header that
# claims more than its body holds may be refused, or decoded as what the body really holds.
CLAIMS = {
    "wav: 1 hour claimed, 1 s held": (AUDIO, lambda real: wav_claiming_an_hour(), ("ok", "input_error")),
    "wav: 65535 channels at 4 GHz": (AUDIO, lambda real: wav_with_absurd_fields(), REFUSED),
    "wav: real 1 hour (8 kHz u8, 29 MB)": (AUDIO, lambda real: real_wav(HOUR), REFUSED),
    "wav: real 19 min (accepted, 60 s decoded)": (AUDIO, lambda real: real_wav(19 * 60), ("ok",)),
    "flac: 1 hour claimed": (AUDIO, lambda real: flac_claiming(HOUR * 8000, real["flac"]), REFUSED),
    "flac: 2^36 samples claimed": (AUDIO, lambda real: flac_claiming((1 << 36) - 1, real["flac"]), REFUSED),
    "png: 100000x100000 claimed": (IMAGE, lambda real: png_claiming(100_000, 100_000), REFUSED),
    "png: 2^31-1 square claimed": (IMAGE, lambda real: png_claiming(2**31 - 1, 2**31 - 1), REFUSED),
    "png: 1 pixel over the limit": (IMAGE, lambda real: png_claiming(40_000_001, 1), REFUSED),
    "jpeg: 65500x65500 claimed": (IMAGE, lambda real: jpeg_claiming(65500, 65500, real["jpeg"]), REFUSED),
    "gif: 65535x65535 claimed": (IMAGE, lambda real: gif_claiming(65535, 65535, real["gif"]), REFUSED),
    "png: real 400 MP bomb (49 KB)": (IMAGE, lambda real: real_png_bomb(20_000, 20_000), REFUSED),
    "png: real 36 MP (accepted)": (IMAGE, lambda real: real_png_bomb(6_000, 6_000), ("ok",)),
    "ply: 1e8 vertices claimed (binary)": (POINTS, lambda real: ply_claiming(), REFUSED),
    "ply: 1e8 vertices claimed (ascii)": (POINTS, lambda real: ply_claiming(binary=False), REFUSED),
    "ply: 1e8 faces claimed": (POINTS, lambda real: ply_claiming(vertices=3, faces=HUNDRED_MILLION), REFUSED),
    "off: 1e8 vertices claimed": (POINTS, lambda real: off_claiming(), REFUSED),
    "stl: 1e8 triangles claimed": (POINTS, lambda real: stl_claiming(), REFUSED),
    "obj: face index 1e8": (POINTS, lambda real: obj_with_far_index(), REFUSED),
    "glb: accessor of 1e8 points": (POINTS, lambda real: glb_accessor_claiming(), REFUSED),
    "glb: 5000-deep node chain": (POINTS, lambda real: glb_deep_nodes(5000), REFUSED),
    "glb: 50000-deep node chain (1.1 MB)": (POINTS, lambda real: glb_deep_nodes(50_000), REFUSED),
    "npy: shape (1e8, 3) claimed": (POINTS, lambda real: npy_claiming(), REFUSED),
    "npy: shape (2^62, 3) claimed": (POINTS, lambda real: npy_claiming((2**62, 3)), REFUSED),
    "npy: negative shape": (POINTS, lambda real: npy_claiming((-5, 3)), REFUSED),
    "npz: real 250 MB zip bomb (255 KB)": (POINTS, lambda real: real_npz_bomb(250), REFUSED),
    "npz: directory lies (1 KB)": (POINTS, lambda real: npz_lying_about_its_size(), REFUSED),
    "npz: real 64 MB of identical rows (65 KB)": (POINTS, lambda real: real_npz_bomb(64), REFUSED),
    "xyz: NaN/inf/1e308 rows": (POINTS, lambda real: xyz_with_non_finite(), REFUSED),
}


def real_samples() -> dict[str, bytes]:
    """Small valid files to patch and to warm the sandbox with, one per format."""
    import tempfile
    from pathlib import Path

    from tests.fixtures.media import (
        make_audio_file,
        make_image_file,
        mesh_bytes,
        points_bytes,
        random_cloud,
    )

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        files = {fmt: make_audio_file(directory, fmt=fmt, sample_rate=8000, seconds=0.2).read_bytes()
                 for fmt in ("wav", "flac", "ogg", "mp3")}
        files |= {fmt: make_image_file(directory, fmt=fmt).read_bytes()
                  for fmt in ("jpeg", "png", "gif", "webp", "tiff")}
    files |= {fmt: mesh_bytes(fmt) for fmt in ("ply", "obj", "off", "stl", "glb")}
    files |= {fmt: points_bytes(fmt, random_cloud(64)) for fmt in ("xyz", "npy", "npz")}
    return files


def warm_up() -> None:
    """Decode one file of every format, so every lazy import happens before the sandbox forks."""
    from cmcr.data.media import load_audio, load_image, load_points

    for fmt, data in real_samples().items():
        if fmt in ("wav", "flac", "ogg", "mp3"):
            load_audio(data)
        elif fmt in ("jpeg", "png", "gif", "webp", "tiff"):
            load_image(data)
        else:
            load_points(data, num_points=64, format=fmt)
