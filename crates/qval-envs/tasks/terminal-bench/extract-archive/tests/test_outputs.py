from pathlib import Path

def test_extracted():
    numbers = Path("/app/extracted/data/numbers.txt").read_text().split()
    assert [int(x) for x in numbers] == [i * i for i in range(1, 21)]
    assert Path("/app/extracted/data/words.txt").read_text() == "tar\ngzip\nbubblewrap\n"

def test_archive_kept():
    assert Path("/app/bundle.tar.gz").stat().st_size > 100


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
