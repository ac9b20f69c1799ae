from pathlib import Path

def test_total():
    assert Path("/app/total.txt").read_text().strip() == "9058.70"


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
