from pathlib import Path

def test_unique():
    want = sorted(set(Path("/app/words.txt").read_text().splitlines()))
    assert want == ['Apple', 'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi', 'lemon']
    assert Path("/app/unique.txt").read_text().splitlines() == want


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
