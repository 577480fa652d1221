"""A model small enough to train for a few steps in about a second on one CPU core.

For tests, the notebooks' smoke mode and quick demos: 16x16 world images in 16 patches of 4 pixels, an
encoder of width 32 and depth 2, and decoders / text encoder of width 32. Append the data size and loop
settings you need:

    load_config(None, [*TINY_MODEL_OVERRIDES, "train.steps=4", "optim.warmup_steps=1"])
"""

TINY_MODEL_OVERRIDES: tuple[str, ...] = (
    "model.img_size=16",
    "data.image_size=16",
    "data.world.image_size=16",
    "model.depth=2",
    "model.embed_dim=32",
    "model.num_heads=2",
    "model.decoder_width=32",
    "model.decoder_depth=1",
    "model.caption_width=32",
    "model.text_width=32",
    "model.text_depth=1",
    "model.projection_dim=16",
)
