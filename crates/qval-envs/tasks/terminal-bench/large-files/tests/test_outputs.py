from pathlib import Path

def test_large():
    assert Path("/app/large.txt").read_text().splitlines() == ['a.bin', 'sub/c.log', 'sub/deep/e.dat']


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
