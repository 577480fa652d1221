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

# A whole run small enough for a training step in tens of milliseconds on one CPU thread: the model above
# at width 64 on a 512-image world. Tests add the objective and the loop's settings.
TINY_RUN_OVERRIDES: tuple[str, ...] = (
    *TINY_MODEL_OVERRIDES,
    "model.embed_dim=64",
    "model.projection_dim=32",
    "data.world.size=512",
    "data.world.eval_size=64",
    "tokenizer.train_captions=500",
    "train.batch_size=16",
    "train.log_every=1",
    "optim.warmup_steps=1",
)
