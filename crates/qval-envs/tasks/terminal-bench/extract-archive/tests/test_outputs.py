from pathlib import Path

def test_extracted():
    numbers = Path("/app/extracted/data/numbers.txt").read_text().split()
    assert [int(x) for x in numbers] == [i * i for i in range(1, 21)]
    assert Path("/app/extracted/data/words.txt").read_text() == "tar\ngzip\nbubblewrap\n"

def test_archive_kept():
    assert Path("/app/bundle.tar.gz").stat().st_size > 100
