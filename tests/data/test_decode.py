"""Decoding: every image mode becomes float RGB in [0, 1]; each kind of broken file gets its reason."""

import io

import numpy as np
import pytest
from PIL import Image, features

from infomug.data.bad_samples import BadSample
from infomug.data.decode import apply_transform, decode_image, load_image_file


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def pixels():
    return np.random.default_rng(0).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)


def test_png_decodes_exactly_to_chw_in_unit_range(pixels):
    image = decode_image(encoded(Image.fromarray(pixels), "PNG"), "k")
    assert image.shape == (3, 12, 20) and image.dtype.is_floating_point
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, pixels, atol=1e-4)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_lossy_formats_decode_to_what_pil_decodes(pixels, fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this PIL has no WebP support")
    data = encoded(Image.fromarray(pixels), fmt)
    image = decode_image(data, "k")
    reference = np.array(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
    assert image.shape == (3, 12, 20)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, reference, atol=1e-4)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK", "1"])
def test_other_modes_become_three_channel_rgb(pixels, mode):
    image = Image.fromarray(pixels).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(encoded(image, fmt), "k")
    assert decoded.shape == (3, 12, 20)
    if mode == "L":
        assert (decoded[0] == decoded[1]).all() and (decoded[1] == decoded[2]).all()


def test_palette_with_transparency_is_not_bad(pixels):
    image = Image.fromarray(pixels).convert("P")
    assert decode_image(encoded(image, "PNG", transparency=0), "k").shape == (3, 12, 20)


def test_garbage_is_unreadable():
    with pytest.raises(BadSample) as caught:
        decode_image(b"certainly not an image", "shard.tar:0001")
    assert caught.value.reason == "unreadable_image" and caught.value.key == "shard.tar:0001"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_truncated(pixels, fmt):
    data = encoded(Image.fromarray(pixels), fmt)
    with pytest.raises(BadSample) as caught:
        decode_image(data[: len(data) // 2], "k")
    assert caught.value.reason == "truncated_image"


def test_a_missing_file_is_a_missing_image(tmp_path):
    with pytest.raises(BadSample) as caught:
        load_image_file(tmp_path / "nope.jpg")
    assert caught.value.reason == "missing_image" and "nope.jpg" in caught.value.key


def test_load_image_file_and_transform(tmp_path, pixels):
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = load_image_file(tmp_path / "a.png")
    assert apply_transform(image, None) is image
    assert apply_transform(image, lambda x: x[:, :4, :4]).shape == (3, 4, 4)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    # PIL's convert("RGB") clips 16-bit values at 255, which turns such a PNG almost white.
    ramp = np.linspace(0, 65535, 12 * 20).reshape(12, 20).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16")
    decoded = decode_image(encoded(image, "PNG"), "k")
    assert decoded.shape == (3, 12, 20) and (decoded[0] == decoded[2]).all()
    # Rounding ramp / 257 to 8 bits moves a value by at most half a level.
    np.testing.assert_allclose(decoded[0].numpy() * 255, ramp / 257, atol=0.5 + 1e-4)
