"""Audio files and bytes -> mono float32 samples at CLAP's rate (48 kHz).

Accepted: WAV (incl. RF64/WAVEX), FLAC, OGG (Vorbis/Opus), MP3 and AIFF: everything the bundled
libsndfile decodes, detected from the file's magic bytes, never from its name. PCM 8/16/24/32-bit
and float files are read as float32; channels are averaged to mono; any rate is resampled to
`sample_rate` with a polyphase filter (scipy `resample_poly`, exact rational ratio).

Length policy (why: CLAP embeds 10 s windows and fuses longer clips, so a minute is plenty for a
query, and decoding stays bounded for a public Space):
- files over `max_bytes` (100 MB) are refused before decoding;
- files whose header states more than `max_source_seconds` (20 min) are refused before decoding;
- the first `max_seconds` (60 s) are kept and the rest is never decoded; `AudioClip.truncated`
  and a warning say so;
- clips shorter than `MIN_SECONDS` (0.05 s) are refused; 0.1 s clips are fine (CLAP repeat-pads).

Content checks: NaN/inf samples are refused. Silence (peak below -80 dBFS) and clipping (more than
0.1 % of samples at full scale) are accepted but reported in `AudioClip.warnings`, so the app can
tell a visitor why results look random. Float files louder than full scale are scaled down to fit
[-1, 1] and that is reported too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import soundfile
from scipy.signal import resample_poly

from cmcr.errors import InputError
from cmcr.data.media.source import Source, SourceBytes, decoder_reason, read_source

MAX_BYTES = 100_000_000
MAX_SECONDS = 60.0
MAX_SOURCE_SECONDS = 20 * 60.0
MIN_SECONDS = 0.05
MAX_CHANNELS = 32
MAX_RESAMPLE_FACTOR = 1000
SILENCE_PEAK = 1e-4
CLIPPING_LEVEL = 0.999
CLIPPING_FRACTION = 1e-3
ACCEPTED = "WAV, FLAC, OGG (Vorbis/Opus), MP3 or AIFF"

_UNSUPPORTED_MAGIC = {
    b"ftyp": "M4A/AAC/MP4",
    b"\x1aE\xdf\xa3": "WebM/Matroska",
    b"\x30\x26\xb2\x75": "WMA",
}


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio plus what a visitor should know about it."""

    samples: np.ndarray  # float32 (T,), mono, in [-1, 1]
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_seconds: float  # duration stated by the file, before truncation
    truncated: bool
    warnings: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def sniff_audio_format(data: bytes) -> str | None:
    """The container named by the magic bytes ("wav", "flac", "ogg", "mp3", "aiff") or None."""
    head = data[:12]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3":
        return "mp3"
    is_mpeg_sync = len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0
    if is_mpeg_sync and (head[1] >> 1) & 0x3:  # layer bits 00 are ADTS AAC, not MPEG audio
        return "mp3"
    return None


def _refuse_unknown(source: SourceBytes) -> InputError:
    data = source.data
    for magic, name in _UNSUPPORTED_MAGIC.items():
        if data[4:8] == magic or data[:4] == magic:
            return InputError(
                f"{source.label} looks like {name}, which cannot be decoded here. "
                f"Please convert it to {ACCEPTED}."
            )
    return InputError(f"{source.label} is not a recognised audio file. Accepted: {ACCEPTED}.")


def _check_header(
    source: SourceBytes, rate: int, channels: int, frames: int, max_seconds: float
) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{source.label} has {channels} channels; 1 to {MAX_CHANNELS} accepted.")
    if not 1000 <= rate <= 768_000:
        raise InputError(f"{source.label} states a sample rate of {rate} Hz, which is not usable.")
    seconds = frames / rate
    if frames <= 0:
        raise InputError(f"{source.label} contains no audio samples.")
    if seconds > MAX_SOURCE_SECONDS:
        raise InputError(
            f"{source.label} is {seconds / 60:.1f} minutes long; files up to "
            f"{MAX_SOURCE_SECONDS / 60:.0f} minutes are accepted (the first "
            f"{max_seconds:g} s are used). Please trim it."
        )


def _decode(source: SourceBytes, max_seconds: float) -> tuple[np.ndarray, int, float, bool]:
    """(frames, channels) float32 of at most `max_seconds`, the file's rate, its stated duration
    and whether frames were left undecoded."""
    try:
        with soundfile.SoundFile(io.BytesIO(source.data)) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            _check_header(source, rate, channels, frames, max_seconds)
            keep = min(frames, max(1, int(round(max_seconds * rate))))
            samples = sound.read(keep, dtype="float32", always_2d=True)
    except InputError:
        raise
    except Exception as error:  # libsndfile reports corrupt data in many ways; all mean "unusable"
        raise InputError(
            f"{source.label} could not be decoded as audio ({decoder_reason(error)}). "
            f"The file may be damaged; accepted: {ACCEPTED}."
        ) from None
    if samples.shape[0] == 0:
        raise InputError(f"{source.label} contains no audio samples (the file may be truncated).")
    return samples, rate, frames / rate, keep < frames


def _resample(mono: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling by target/rate. Odd rates (44101 Hz) would need filters of millions of
    taps, so the ratio is approximated with up/down factors of at most 1000 (pitch error < 1e-4,
    far below hearing; common rates stay exact)."""
    if rate == target:
        return mono
    denominator_limit = max(1, min(MAX_RESAMPLE_FACTOR, MAX_RESAMPLE_FACTOR * rate // target))
    ratio = Fraction(target, rate).limit_denominator(denominator_limit)
    return resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)


def _loudness_warnings(channels: np.ndarray, label: str) -> list[str]:
    peak = float(np.max(np.abs(channels)))
    if peak < SILENCE_PEAK:
        return [f"{label} is silent (peak {peak:.1e}); results for it carry no meaning."]
    at_full_scale = float(np.mean(np.abs(channels) >= CLIPPING_LEVEL))
    if at_full_scale > CLIPPING_FRACTION:
        return [f"{label} is clipped ({at_full_scale:.1%} of samples at full scale)."]
    return []


def decode_audio(
    source: Source,
    *,
    sample_rate: int = 48000,
    max_seconds: float = MAX_SECONDS,
    max_bytes: int = MAX_BYTES,
    format: str | None = None,
) -> AudioClip:
    """Decode, validate, downmix and resample one audio input; see the module docstring."""
    raw = read_source(source, max_bytes=max_bytes, kind="audio", format=format)
    if sniff_audio_format(raw.data) is None and raw.hint != "mp3":
        raise _refuse_unknown(raw)
    channels, rate, source_seconds, truncated = _decode(raw, max_seconds)
    if not np.all(np.isfinite(channels)):
        raise InputError(f"{raw.label} contains invalid samples (NaN or infinity).")
    if channels.shape[0] / rate < MIN_SECONDS:
        raise InputError(
            f"{raw.label} is {1000 * channels.shape[0] / rate:.0f} ms long; "
            f"at least {1000 * MIN_SECONDS:.0f} ms of audio is needed."
        )
    peak = float(np.max(np.abs(channels)))
    if peak > 1.0:  # only float files go past full scale; nothing was clipped, so scale it down
        channels = channels / peak
        warnings = [f"{raw.label} exceeded full scale (peak {peak:.2f}); it was scaled down."]
    else:
        warnings = _loudness_warnings(channels, raw.label)
    if truncated:
        warnings.append(
            f"{raw.label} is {source_seconds:.1f} s long; "
            f"only the first {max_seconds:g} s are used."
        )
    mono = _resample(channels.mean(axis=1, dtype=np.float32), rate, sample_rate)
    return AudioClip(
        samples=np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False),
        sample_rate=sample_rate,
        source_sample_rate=rate,
        source_channels=channels.shape[1],
        source_seconds=source_seconds,
        truncated=truncated,
        warnings=tuple(warnings),
    )


def load_audio(
    source: Source,
    *,
    sample_rate: int = 48000,
    max_seconds: float = MAX_SECONDS,
    max_bytes: int = MAX_BYTES,
    format: str | None = None,
) -> np.ndarray:
    """Mono float32 samples at `sample_rate`, ready for the CLAP encoder (contract in docs)."""
    return decode_audio(
        source, sample_rate=sample_rate, max_seconds=max_seconds, max_bytes=max_bytes, format=format
    ).samples
