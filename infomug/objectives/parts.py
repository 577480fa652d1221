"""Build each model part from a `ModelConfig`, so every objective sizes its parts the same way."""

from __future__ import annotations

from infomug.models import CaptionDecoder, MAEDecoder, MaskedViTEncoder, ModelConfig, TextEncoder


def build_encoder(config: ModelConfig) -> MaskedViTEncoder:
    """The masked timm ViT of ``config``."""
    return MaskedViTEncoder(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
    )


def build_pixel_decoder(config: ModelConfig, encoder: MaskedViTEncoder) -> MAEDecoder:
    """MAE's pixel decoder for ``encoder``'s patch grid."""
    return MAEDecoder(
        grid_size=encoder.grid_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        encoder_dim=config.embed_dim,
        width=config.decoder_width,
        depth=config.decoder_depth,
        num_heads=config.decoder_num_heads,
        mlp_ratio=config.mlp_ratio,
    )


def build_caption_decoder(config: ModelConfig) -> CaptionDecoder:
    """MUG's caption decoder, cross-attending to an encoder of width ``config.embed_dim``."""
    return CaptionDecoder(
        vocab_size=config.vocab_size,
        context_length=config.context_length,
        width=config.caption_width,
        unimodal_layers=config.caption_unimodal_layers,
        multimodal_layers=config.caption_multimodal_layers,
        num_heads=config.caption_num_heads,
        image_dim=config.embed_dim,
        mlp_ratio=config.mlp_ratio,
    )


def build_text_encoder(config: ModelConfig) -> TextEncoder:
    """CLIP-style causal text encoder."""
    return TextEncoder(
        vocab_size=config.vocab_size,
        context_length=config.context_length,
        width=config.text_width,
        depth=config.text_depth,
        num_heads=config.text_num_heads,
        mlp_ratio=config.mlp_ratio,
    )
