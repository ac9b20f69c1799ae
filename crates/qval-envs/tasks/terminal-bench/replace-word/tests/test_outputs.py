from pathlib import Path

D = Path("/app/docs")

def test_markdown():
    assert D.joinpath("intro.md").read_text() == "# Intro\n\nPick a color. The color of the sky.\n"
    assert D.joinpath("guide.md").read_text() == "Colors: set color = blue.\n"

def test_other_files():
    assert D.joinpath("notes.txt").read_text() == "keep the colour here\n"
