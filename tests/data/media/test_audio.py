"""Audio loading: every container written and decoded back, values checked; bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cmcr import InputError
from cmcr.data.media import audio as audio_module
from cmcr.data.media import decode_audio, load_audio
from tests.fixtures.media import make_audio_file, sine

TONE = 1000.0


def dominant_frequency(samples: np.ndarray, sample_rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * sample_rate / len(samples))


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "channels", "subtype"),
    [
        ("wav", 48000, 1, "PCM_16"),
        ("wav", 44100, 2, "PCM_24"),
        ("wav", 32000, 1, "PCM_32"),
        ("wav", 16000, 1, "PCM_U8"),
        ("wav", 96000, 2, "FLOAT"),
        ("flac", 22050, 2, "PCM_16"),
        ("flac", 8000, 1, "PCM_24"),
        ("ogg", 44100, 2, "VORBIS"),
        ("ogg", 48000, 1, "OPUS"),
        ("mp3", 44100, 2, "MPEG_LAYER_III"),
        ("aiff", 22050, 1, "PCM_16"),
    ],
)
def test_every_format_is_resampled_to_48k_mono_with_its_pitch(
    tmp_path, fmt, sample_rate, channels, subtype
):
    path = make_audio_file(
        tmp_path,
        fmt=fmt,
        sample_rate=sample_rate,
        channels=channels,
        subtype=subtype,
        frequency=TONE,
    )
    clip = decode_audio(path)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.source_sample_rate == sample_rate and clip.source_channels == channels
    assert abs(len(clip.samples) - 48000) < 48000 * 0.06  # mp3/opus pad by a few frames
    assert abs(dominant_frequency(clip.samples) - TONE) < 3.0
    assert 0.4 < np.max(np.abs(clip.samples)) <= 1.0
    assert clip.warnings == ()


@pytest.mark.parametrize("as_kind", ["bytes", "file object", "path string"])
def test_sources_are_sniffed_not_named(tmp_path, as_kind):
    path = make_audio_file(
        tmp_path, fmt="flac", sample_rate=16000, frequency=TONE, name="misnamed.wav"
    )
    source = {
        "bytes": path.read_bytes(),
        "file object": io.BytesIO(path.read_bytes()),
        "path string": str(path),
    }
    samples = load_audio(source[as_kind])
    assert abs(dominant_frequency(samples) - TONE) < 3.0


def test_other_target_rate(tmp_path):
    path = make_audio_file(tmp_path, sample_rate=44100, frequency=TONE)
    samples = load_audio(path, sample_rate=16000)
    assert len(samples) == 16000
    assert abs(dominant_frequency(samples, 16000) - TONE) < 3.0


def test_multichannel_is_averaged(tmp_path):
    frames = sine(48000, 0.5, TONE, 0.6)
    six = np.zeros((len(frames), 6), dtype=np.float32)
    six[:, 0] = frames
    samples = load_audio(make_audio_file(tmp_path, samples=six, subtype="FLOAT"))
    assert np.max(np.abs(samples)) == pytest.approx(0.1, rel=0.02)


def test_a_tenth_of_a_second_is_accepted(tmp_path):
    clip = decode_audio(make_audio_file(tmp_path, sample_rate=22050, seconds=0.1, frequency=TONE))
    assert abs(len(clip.samples) - 4800) <= 1
    assert clip.seconds == pytest.approx(0.1, abs=1e-3)


def test_silence_is_accepted_but_flagged(tmp_path):
    clip = decode_audio(make_audio_file(tmp_path, samples=np.zeros(4800, dtype=np.float32)))
    assert np.all(clip.samples == 0)
    assert any("silent" in warning for warning in clip.warnings)


def test_clipping_is_flagged(tmp_path):
    square = np.sign(sine(48000, 0.5, 100.0, 1.0)).astype(np.float32)
    clip = decode_audio(make_audio_file(tmp_path, samples=square))
    assert any("clipped" in warning for warning in clip.warnings)


def test_loud_float_file_is_scaled_into_full_scale(tmp_path):
    loud = sine(48000, 0.5, TONE, 2.0)
    path = make_audio_file(tmp_path, samples=loud, subtype="FLOAT")
    clip = decode_audio(path)
    assert np.max(np.abs(clip.samples)) == pytest.approx(1.0, abs=0.01)
    assert clip.warnings == (f"'{path.name}' exceeded full scale (peak 2.00); it was scaled down.",)


def test_long_files_keep_the_first_max_seconds(tmp_path):
    tone_then_silence = np.concatenate([sine(48000, 1.0, TONE), np.zeros(48000, dtype=np.float32)])
    clip = decode_audio(make_audio_file(tmp_path, samples=tone_then_silence), max_seconds=0.5)
    assert len(clip.samples) == 24000 and clip.truncated
    assert clip.source_seconds == pytest.approx(2.0)
    assert any("only the first 0.5 s" in warning for warning in clip.warnings)
    assert np.max(np.abs(clip.samples)) > 0.4  # it is the start that is kept


def test_files_stated_too_long_are_refused_from_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_module, "MAX_SOURCE_SECONDS", 0.5)
    with pytest.raises(InputError, match="minutes long"):
        load_audio(make_audio_file(tmp_path, seconds=1.0))


def test_files_over_the_byte_limit_are_refused_unread(tmp_path):
    path = make_audio_file(tmp_path, seconds=1.0)
    with pytest.raises(InputError, match="limit"):
        load_audio(path, max_bytes=1000)
    with pytest.raises(InputError, match="limit"):
        load_audio(io.BytesIO(path.read_bytes()), max_bytes=1000)


def test_nan_samples_are_refused(tmp_path):
    samples = sine(48000, 0.2)
    samples[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_audio(make_audio_file(tmp_path, samples=samples, subtype="FLOAT"))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text and not a sound", "not a recognised audio file"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "M4A"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "could not be decoded"),
    ],
)
def test_bad_bytes_are_refused_with_a_message(payload, message):
    with pytest.raises(InputError, match=message):
        load_audio(payload)


def test_truncated_and_empty_wavs_are_refused(tmp_path):
    data = make_audio_file(tmp_path, seconds=0.5).read_bytes()
    with pytest.raises(InputError):
        load_audio(data[:60])
    empty = make_audio_file(tmp_path, samples=np.zeros(0, dtype=np.float32), name="empty.wav")
    with pytest.raises(InputError, match="no audio"):
        load_audio(empty)


def test_too_short_and_missing_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="at least"):
        load_audio(make_audio_file(tmp_path, seconds=0.01))
    with pytest.raises(InputError, match="No audio file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="binary mode"):
        load_audio(io.StringIO("text"))


@pytest.mark.parametrize("sample_rate", [1001, 44101, 192000])
def test_odd_rates_keep_their_pitch(tmp_path, sample_rate):
    path = make_audio_file(tmp_path, sample_rate=sample_rate, frequency=440.0, seconds=1.0)
    samples = load_audio(path)
    assert abs(len(samples) - 48000) <= 48000 * 1e-4
    assert abs(dominant_frequency(samples) - 440.0) < 2.0
