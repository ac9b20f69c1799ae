from pathlib import Path

P = Path("/app/photos")

def test_no_jpeg_left():
    assert sorted(p.name for p in P.glob("*.jpeg")) == []

def test_jpg_with_contents():
    for n in ["beach", "city", "forest", "snow"]:
        assert (P / f"{n}.jpg").read_text() == f"JPEG-DATA-{n}\n"

def test_png_untouched():
    assert (P / "logo.png").read_text() == "PNG-DATA\n"


if __name__ == "__main__":
    # Run by tests/test.sh without pytest: every test_* function; exit 1 if any fails.
    failed = 0
    for name, check in list(globals().items()):
        if name.startswith("test_"):
            try:
                check()
                print("PASSED", name)
            except Exception as e:
                failed += 1
                print("FAILED", name, type(e).__name__, e)
    raise SystemExit(1 if failed else 0)
