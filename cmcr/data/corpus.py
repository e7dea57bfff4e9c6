"""The default text corpus: sentences generated from label vocabularies and templates.

Both connections need text: it is the overlap memory of CLAP→CLIP and the `p` memory of
ULIP→CLIP. Shipping a generated corpus means `python scripts/train.py` needs no dataset download.
The sentences describe what the other modalities hold (sound events, objects, scenes and 3D shape
categories), so that the text memory covers the semantic neighbourhoods the pseudo partners are
drawn from. Generation is a pure function of (size, seed): the same call gives the same list.

The shape sentences never use the zero-shot 3D prompts (`cmcr.data.vocabulary.TEMPLATES["points"]`,
which the ModelNet40 protocol scores with): the ULIP→CLIP connection aggregates its text memory,
so a prompt in it would hand the evaluation its own answers. The sound and image sentences do
share templates with the app's default audio and image labels; no evaluation protocol uses those.
"""

from __future__ import annotations

import random
import re

from cmcr.errors import InputError
from cmcr.data.vocabulary import MODELNET40

DEFAULT_SIZE = 3000
DEFAULT_SEED = 0

SOUND_EVENTS = (
    "a dog barking", "a cat meowing", "birds singing", "a rooster crowing", "a cow mooing",
    "sheep bleating", "a horse neighing", "frogs croaking", "crickets chirping", "bees buzzing",
    "an owl hooting", "crows cawing", "seagulls calling", "a lion roaring", "a pig grunting",
    "rain falling", "thunder rumbling", "wind howling", "sea waves crashing", "a stream flowing",
    "a waterfall", "a fire crackling", "leaves rustling", "hail on a roof", "water dripping",
    "a car engine starting", "a car horn honking", "a motorcycle revving", "a train passing",
    "a train horn", "an airplane flying over", "a helicopter hovering", "a siren wailing",
    "a truck reversing", "a bicycle bell", "traffic noise", "tyres screeching", "a boat engine",
    "footsteps on gravel", "a door knocking", "a door slamming", "a clock ticking",
    "an alarm clock ringing", "a phone ringing", "keys jingling", "a vacuum cleaner",
    "a washing machine", "a kettle whistling", "dishes clattering", "glass breaking",
    "a chainsaw", "a hammer hitting nails", "a drill", "typing on a keyboard", "paper crumpling",
    "people applauding", "a crowd cheering", "children laughing", "a baby crying",
    "a man speaking", "a woman singing", "people chatting", "someone coughing", "someone snoring",
    "a church bell ringing", "fireworks exploding", "a gunshot", "a drum beat",
    "an acoustic guitar", "a piano melody", "a violin playing", "a trumpet", "a flute",
    "an electric guitar solo", "a choir singing", "a saxophone", "cymbals crashing",
)
OBJECTS = (
    "a dog", "a cat", "a bird", "a horse", "a cow", "a sheep", "an elephant", "a giraffe",
    "a zebra", "a bear", "a car", "a bicycle", "a motorcycle", "a bus", "a truck", "a train",
    "an airplane", "a boat", "a traffic light", "a fire hydrant", "a bench", "an umbrella",
    "a backpack", "a suitcase", "a frisbee", "a kite", "a skateboard", "a surfboard",
    "a tennis racket", "a bottle", "a wine glass", "a cup", "a fork", "a knife", "a spoon",
    "a bowl", "a banana", "an apple", "an orange", "a pizza", "a cake", "a sandwich", "a chair",
    "a sofa", "a potted plant", "a bed", "a dining table", "a television", "a laptop",
    "a keyboard", "a cell phone", "a microwave", "an oven", "a toaster", "a sink",
    "a refrigerator", "a book", "a clock", "a vase", "a teddy bear", "a guitar", "a piano",
    "a violin", "a drum kit", "a lamp", "a mug of coffee", "a church bell", "a kettle",
)
SCENES = (
    "a beach", "a forest", "a mountain", "a desert", "a lake", "a river", "a waterfall",
    "a meadow", "a field of flowers", "a snowy village", "a city street", "a busy market",
    "a train station", "an airport", "a harbour", "a highway", "a parking lot", "a park",
    "a playground", "a kitchen", "a living room", "a bedroom", "a bathroom", "an office",
    "a classroom", "a library", "a restaurant", "a cafe", "a concert hall", "a stadium",
    "a church", "a farm", "a barn", "a garden", "a construction site", "a factory",
    "a subway platform", "a rainy street", "a sunset over the sea", "a night sky full of stars",
)
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown", "orange", "purple")
MATERIALS = ("wooden", "metal", "plastic", "glass", "stone", "ceramic", "leather", "fabric")
SIZES = ("small", "large", "tall", "low", "wide", "narrow", "old", "modern")
TIMES = ("in the morning", "at night", "at dusk", "on a rainy day", "in winter", "in summer",
         "on a windy afternoon", "in the distance", "close by", "indoors", "outdoors")
# The shape categories read naturally with spaces ("night stand"), as MODELNET40 spells them.
SHAPES = MODELNET40

SOUND_TEMPLATES = (
    "the sound of {s}.", "a recording of {s}.", "{s} can be heard {t}.", "you can hear {s} {t}.",
    "an audio clip of {s}.", "{s}, recorded {t}.", "a loud sound of {s}.", "a faint sound of {s}.",
    "{s} and {s2} at the same time.", "first {s}, then {s2}.",
)
OBJECT_TEMPLATES = (
    "a photo of {o}.", "a close-up photo of {o}.", "a picture of {o} in {sc}.",
    "{o} next to {o2}.", "a {c} object that looks like {o}.", "a blurry photo of {o}.",
    "an illustration of {o}.", "{o} photographed {t}.", "a drawing of {o} on a table.",
)
SCENE_TEMPLATES = (
    "a photo of {sc}.", "a view of {sc} {t}.", "{sc} with {o} in the foreground.",
    "people walking through {sc}.", "an empty {scn}.", "a wide shot of {sc}.",
    "{sc}, where {s} can be heard.",
)
SHAPE_TEMPLATES = (
    "a CAD model of a {sh}.", "a mesh of a {c} {sh} with smooth surfaces.", "a {m} {sh}.",
    "a {z} {m} {sh}.", "a {c} {sh}.", "a CAD model of a {z} {sh}.", "a {sh} seen from above.",
    "a 3D scan of a {c} {m} {sh}.", "a {sh} standing in an empty room.",
)
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
FAMILIES = (
    (SOUND_TEMPLATES, 3),  # weights: sounds, objects, scenes and shapes in a 3:3:2:3 mix
    (OBJECT_TEMPLATES, 3),
    (SCENE_TEMPLATES, 2),
    (SHAPE_TEMPLATES, 3),
)


def _fill(template: str, rng: random.Random) -> str:
    """One sentence from a template; every slot draws its own word."""
    sound, sound2 = rng.sample(SOUND_EVENTS, 2)
    thing, thing2 = rng.sample(OBJECTS, 2)
    scene = rng.choice(SCENES)
    words = {
        "s": sound, "s2": sound2, "o": thing, "o2": thing2, "sc": scene,
        "scn": scene.split(" ", 1)[1], "sh": rng.choice(SHAPES), "c": rng.choice(COLOURS),
        "m": rng.choice(MATERIALS), "z": rng.choice(SIZES), "t": rng.choice(TIMES),
    }
    return _tidy(template.format(**words))


def _tidy(sentence: str) -> str:
    """Capitalise, and "a" before a vowel becomes "an" ("a airplane" -> "an airplane")."""
    sentence = _A_BEFORE_VOWEL.sub(lambda match: match.group(1) + "n ", sentence)
    return sentence[0].upper() + sentence[1:]


def default_corpus(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> list[str]:
    """`size` distinct sentences, deterministic in (size, seed).

    Every label of every vocabulary appears at least once (in a plain "the sound of …" /
    "a photo of …" / "a CAD model of a …" sentence) before the templated variations fill the rest.
    """
    if not isinstance(size, int) or size < 1:
        raise InputError(f"corpus size must be a positive integer, got {size!r}")
    basics = ([f"The sound of {s}." for s in SOUND_EVENTS] + [f"A photo of {o}." for o in OBJECTS]
              + [f"A photo of {sc}." for sc in SCENES] + [_tidy(f"A CAD model of a {sh}.") for sh in SHAPES])
    rng = random.Random(seed)
    rng.shuffle(basics)
    sentences = dict.fromkeys(basics[:size])
    templates = [t for family, weight in FAMILIES for t in family * weight]
    attempts = 0
    while len(sentences) < size:
        sentences.setdefault(_fill(rng.choice(templates), rng))
        attempts += 1
        if attempts > 50 * size:
            raise InputError(f"the templates cannot make {size} distinct sentences")
    return list(sentences)
