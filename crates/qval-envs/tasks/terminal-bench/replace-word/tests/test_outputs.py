from pathlib import Path

D = Path("/app/docs")

def test_markdown():
    assert D.joinpath("intro.md").read_text() == "# Intro\n\nPick a color. The color of the sky.\n"
    assert D.joinpath("guide.md").read_text() == "Colors: set color = blue.\n"

def test_other_files():
    assert D.joinpath("notes.txt").read_text() == "keep the colour here\n"


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
