"""Reference image conversion and fitting, MP4 writing/reading, contact sheets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wildactor.errors import WildActorError
from wildactor.media import contact_sheet, fit_and_pad, load_image, read_mp4, to_rgb, write_mp4


def test_transparent_pixels_become_white_and_opaque_ones_keep_their_colour(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (200, 10, 10, 255)  # opaque red top half, fully transparent black bottom half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = np.asarray(load_image(tmp_path / "a.png"))
    assert (rgb[:2] == (200, 10, 10)).all() and (rgb[2:] == 255).all()


def test_palette_with_transparency_is_composited_on_white():
    p = Image.new("P", (2, 2), 0)
    p.putpalette([0, 0, 0, 9, 200, 9] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.info["transparency"] = 0
    rgb = np.asarray(to_rgb(p))
    assert (rgb[0, 0] == 255).all() and tuple(rgb[1, 1]) == (9, 200, 9)


def test_grey_and_16_bit_images_are_converted_not_refused(tmp_path):
    Image.fromarray(np.full((3, 3), 77, dtype=np.uint8), "L").save(tmp_path / "g.png")
    assert (np.asarray(load_image(tmp_path / "g.png")) == 77).all()
    wide = np.array([[0, 257 * 100], [65535, 257 * 255]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    rgb = np.asarray(load_image(tmp_path / "w.png"))
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 100], [255, 255]])


def test_16_bit_colour_images_are_reduced_to_8_bit(tmp_path):
    import cv2

    bgr = np.zeros((4, 6, 3), dtype=np.uint16)
    bgr[..., 2], bgr[..., 1] = 65535, 257 * 100  # red full, green 100 (cv2 writes BGR)
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    assert tuple(np.asarray(load_image(tmp_path / "c16.png"))[0, 0]) == (255, 100, 0)


def test_float_images_missing_and_unreadable_files_are_one_line_errors(tmp_path):
    Image.fromarray(np.zeros((2, 2), dtype=np.float32), "F").save(tmp_path / "f.tiff")
    (tmp_path / "t.png").write_text("hello")
    cases = [
        (tmp_path / "f.tiff", "unsupported image mode 'F'"),
        (tmp_path / "t.png", "not an image file"),
        (tmp_path / "none.png", "reference image not found"),
        (tmp_path, "not a file"),
    ]
    for path, message in cases:
        with pytest.raises(WildActorError, match=message) as info:
            load_image(path)
        assert "\n" not in str(info.value)


def test_fit_and_pad_keeps_aspect_and_pads_with_white():
    wide = Image.new("RGB", (100, 50), (10, 20, 30))
    out = np.asarray(fit_and_pad(wide, 64, 64))
    assert out.shape == (64, 64, 3)
    assert (out[:16] == 255).all() and (out[48:] == 255).all()  # white bars above and below
    assert (out[17:47] == (10, 20, 30)).all()  # the image, scaled to 64x32, centred


def test_mp4_round_trip_keeps_count_size_and_content(tmp_path):
    t, y, x = np.meshgrid(np.arange(9), np.arange(48), np.arange(80), indexing="ij")
    frames = np.stack([(x * 3 + t * 5) % 256, (y * 5) % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    write_mp4(tmp_path / "a.mp4", frames[:, :, ::-1][:, :, ::-1], fps=8)  # a strided view is fine too
    decoded = read_mp4(tmp_path / "a.mp4")
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4.0
    assert not list(tmp_path.glob("*.partial*"))


def test_write_mp4_refuses_odd_sizes_and_wrong_dtypes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 5, 6, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 4, 6, 3), dtype=np.float32))


def test_contact_sheet_has_a_reference_row_and_one_row_per_shot():
    refs = [Image.new("RGB", (32, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 255, 0))]
    shots = [np.full((9, 32, 48, 3), v, dtype=np.uint8) for v in (10, 200)]
    sheet = contact_sheet(refs, shots, frames_per_shot=3, thumb_height=40)
    assert sheet.height == 3 * (40 + 4) + 4
    px = np.asarray(sheet)
    row2 = 4 + 2 * 44 + 20  # middle of the second shot's row
    assert (px[row2, 80:100] == 200).all()
