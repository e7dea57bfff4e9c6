"""The default gallery's sounds, synthesised: rain, bells, sirens, barks, engines, ..."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import soundfile

from tools.seeds import named_rng

SAMPLE_RATE = 48000


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _smoothed_noise(rng, count: int, width: int) -> np.ndarray:
    kernel = np.hanning(width)
    return np.convolve(rng.standard_normal(count), kernel / kernel.sum(), mode="same")


def _envelope_hits(t, starts, decay) -> np.ndarray:
    envelope = np.zeros_like(t)
    for start in starts:
        after = t - start
        envelope += np.where(after >= 0, np.exp(-np.clip(after, 0, None) / decay), 0.0)
    return envelope


def _rain_sound(rng):
    t = _time(3.0)
    hiss = rng.standard_normal(t.size) - _smoothed_noise(rng, t.size, 9)
    drops = _envelope_hits(t, rng.uniform(0, 3, 60), 0.004) * rng.standard_normal(t.size)
    return 0.25 * hiss + 0.6 * drops


def _bell(rng):
    t = _time(3.0)
    partials = [(0.5, 1.0), (1.0, 0.8), (1.19, 0.5), (1.5, 0.4), (2.0, 0.3), (2.74, 0.2)]
    tone = sum(a * np.sin(2 * np.pi * 440 * r * t) * np.exp(-t * (1.2 + r)) for r, a in partials)
    return tone


def _siren(rng):
    t = _time(3.0)
    frequency = 900 + 350 * np.sin(2 * np.pi * 0.8 * t)
    phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _dog_bark(rng):
    t = _time(2.5)
    bark = np.zeros_like(t)
    for start in (0.2, 0.55, 1.4, 1.75):
        after = t - start
        active = (after >= 0) & (after < 0.18)
        pitch = 2 * np.pi * np.cumsum(np.where(active, 520 - 900 * after, 0)) / SAMPLE_RATE
        burst = (np.sin(pitch) + 0.5 * np.sign(np.sin(2 * pitch)) + 0.3 * rng.standard_normal(t.size))
        bark += np.where(active, burst * np.sin(np.pi * np.clip(after / 0.18, 0, 1)), 0)
    return bark


def _engine(rng):
    t = _time(3.0)
    rumble = sum(np.sin(2 * np.pi * 38 * h * t + h) / h for h in range(1, 9))
    return rumble * (1 + 0.3 * np.sin(2 * np.pi * 7 * t)) + 0.2 * _smoothed_noise(rng, t.size, 30)


def _birdsong(rng):
    t = _time(2.5)
    song = np.zeros_like(t)
    for start in np.sort(rng.uniform(0, 2.3, 12)):
        after = t - start
        active = (after >= 0) & (after < 0.09)
        sweep = 3000 + 2500 * np.sin(2 * np.pi * 11 * after)
        phase = 2 * np.pi * np.cumsum(np.where(active, sweep, 0)) / SAMPLE_RATE
        song += np.where(active, np.sin(phase) * np.sin(np.pi * np.clip(after / 0.09, 0, 1)), 0)
    return song


def _drums(rng):
    t = _time(3.0)
    beat = 60 / 120
    kicks = np.arange(0, 3, beat)
    kick = sum(np.where(t >= s, np.sin(2 * np.pi * 55 * (t - s)) * np.exp(-(t - s) / 0.12), 0) for s in kicks)
    snare = _envelope_hits(t, kicks + beat / 2, 0.05) * rng.standard_normal(t.size)
    hats = _envelope_hits(t, np.arange(0, 3, beat / 2), 0.01) * rng.standard_normal(t.size)
    return kick + 0.6 * snare + 0.25 * hats


def _applause(rng):
    t = _time(3.0)
    claps = _envelope_hits(t, rng.uniform(0, 3, 400), 0.006) * rng.standard_normal(t.size)
    return claps * np.minimum(1.0, np.minimum(t / 0.3, (3.0 - t) / 0.5))


def _train_horn(rng):
    t = _time(3.0)
    chord = sum(np.sign(np.sin(2 * np.pi * f * t)) * 0.3 + np.sin(2 * np.pi * f * t)
                for f in (277.0, 330.0, 415.0))
    return chord * np.minimum(1.0, np.minimum(t / 0.1, (2.6 - t) / 0.2)).clip(0, 1)


def _clock_ticks(rng):
    t = _time(2.5)
    ticks = np.arange(0.1, 2.5, 0.5)
    tocks = ticks + 0.25
    click = np.sin(2 * np.pi * 3200 * t) + 0.5 * rng.standard_normal(t.size)
    return _envelope_hits(t, ticks, 0.003) * click + 0.7 * _envelope_hits(t, tocks, 0.003) * click


SOUNDS: dict[str, tuple[str, Callable]] = {
    "rain": ("the sound of heavy rain", _rain_sound),
    "church_bell": ("a church bell ringing", _bell),
    "siren": ("an ambulance siren", _siren),
    "dog_bark": ("a dog barking", _dog_bark),
    "car_engine": ("a car engine idling", _engine),
    "birdsong": ("birds chirping", _birdsong),
    "drums": ("a drum beat", _drums),
    "applause": ("an audience applauding", _applause),
    "train_horn": ("a train horn", _train_horn),
    "clock_ticking": ("a clock ticking", _clock_ticks),
}


def sound_wave(name: str) -> np.ndarray:
    """The named sound as float32 mono at 48 kHz, peak 0.8."""
    wave = np.asarray(SOUNDS[name][1](named_rng(name)), dtype=np.float64)
    return (0.8 * wave / np.max(np.abs(wave))).astype(np.float32)


def sound_bytes(name: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, sound_wave(name), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
