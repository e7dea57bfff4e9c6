"""The words the project knows: class names and prompt templates for zero-shot naming, which the
default text corpus also draws from (and which an evaluation must not find in its training text)."""

from __future__ import annotations

MODELNET40 = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower pot", "glass box", "guitar", "keyboard",
    "lamp", "laptop", "mantel", "monitor", "night stand", "person", "piano", "plant", "radio",
    "range hood", "sink", "sofa", "stairs", "stool", "table", "tent", "toilet", "tv stand", "vase",
    "wardrobe", "xbox",
)
SOUND_LABELS = (
    "rain", "thunder", "wind", "sea waves", "a stream of water", "a dog barking", "a cat meowing",
    "birds chirping", "a rooster crowing", "a cow mooing", "crickets", "a church bell",
    "a siren", "a car engine", "a car horn", "a train", "a train horn", "an airplane", "a helicopter",
    "footsteps", "a door knock", "a clock ticking", "an alarm clock", "applause", "laughter",
    "a crying baby", "speech", "a crowd", "a drum beat", "a guitar", "a piano", "a violin",
    "a vacuum cleaner", "glass breaking", "fireworks", "a keyboard typing",
)
IMAGE_LABELS = (
    "a dog", "a cat", "a bird", "a horse", "a car", "a bicycle", "a train", "an airplane",
    "a boat", "a tree", "a flower", "a mountain", "a beach", "a sunset", "a city street",
    "a house", "a church", "a clock", "a cup of coffee", "a chair", "a table", "a bed",
    "a guitar", "a person", "food", "rain", "snow", "the sky",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "points": ("a point cloud of a {}.", "a 3D model of a {}.", "a 3D rendering of a {}.",
               "a point cloud model of a {}.", "there is a {} in the scene."),
    "audio": ("the sound of {}.", "a recording of {}.", "{} can be heard.", "this is the sound of {}."),
    "image": ("a photo of {}.", "a picture of {}.", "an illustration of {}.", "a drawing of {}."),
}
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "points": MODELNET40, "audio": SOUND_LABELS, "image": IMAGE_LABELS,
}
