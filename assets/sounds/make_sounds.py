"""Generates the renderer's sound effects (44.1 kHz, 16-bit, stereo WAV).

Run it from this folder to rebuild them: python3 make_sounds.py
"""
import math
import random
import struct
import wave

RATE = 44100


def write(name, samples):
    with wave.open(name, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        frames = bytearray()
        for value in samples:
            clipped = max(-1.0, min(1.0, value))
            frames += struct.pack("<hh", int(clipped * 32767), int(clipped * 32767))
        out.writeframes(bytes(frames))


def chime():
    # Two bell tones a fifth apart, struck one after the other.
    out = []
    for i in range(int(RATE * 0.6)):
        t = i / RATE
        tone = 0.0
        for start, freq in ((0.0, 880.0), (0.09, 1320.0)):
            if t >= start:
                u = t - start
                tone += math.sin(2 * math.pi * freq * u) * math.exp(-u * 7) * 0.28
                tone += math.sin(2 * math.pi * freq * 2.01 * u) * math.exp(-u * 12) * 0.08
        out.append(tone)
    return out


def sweep():
    # A rising whoosh: the clock got more time.
    out = []
    phase = 0.0
    length = int(RATE * 0.5)
    for i in range(length):
        t = i / length
        freq = 300 + 900 * t * t
        phase += 2 * math.pi * freq / RATE
        envelope = math.sin(math.pi * t) * 0.3
        out.append(math.sin(phase) * envelope)
    return out


def gavel():
    # Two knocks of a gavel: a low thump with a short burst of noise.
    random.seed(7)
    out = [0.0] * int(RATE * 0.8)
    for start in (0.0, 0.32):
        offset = int(start * RATE)
        for i in range(int(RATE * 0.25)):
            t = i / RATE
            thump = math.sin(2 * math.pi * 110 * t) * math.exp(-t * 28) * 0.7
            click = (random.random() * 2 - 1) * math.exp(-t * 90) * 0.35
            out[offset + i] += thump + click
    return out


write("bid_accepted.wav", chime())
write("extended.wav", sweep())
write("closed.wav", gavel())
