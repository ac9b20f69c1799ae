from pathlib import Path

P = Path("/app/photos")

def test_no_jpeg_left():
    assert sorted(p.name for p in P.glob("*.jpeg")) == []

def test_jpg_with_contents():
    for n in ["beach", "city", "forest", "snow"]:
        assert (P / f"{n}.jpg").read_text() == f"JPEG-DATA-{n}\n"

def test_png_untouched():
    assert (P / "logo.png").read_text() == "PNG-DATA\n"
