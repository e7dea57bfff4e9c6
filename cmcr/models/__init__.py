"""What turns inputs into points of a shared space: the registry of encoders and pretrained spaces,
the frozen encoders (CLIP, CLAP, ULIP), the projector heads and `UnifiedSpace`."""
