import subprocess
import sys

sys.path.insert(0, "/app")

def test_cli():
    out = subprocess.run([sys.executable, "/app/calc.py", "3", "4"], capture_output=True, text=True)
    assert out.stdout.strip() == "7"

def test_function():
    import calc
    assert calc.add(-2, 5) == 3
    assert calc.add(10, 0) == 10


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
