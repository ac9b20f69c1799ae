import sys

sys.path.insert(0, "/app")

def test_small():
    from fizz import fizzbuzz
    assert fizzbuzz(5) == ["1", "2", "Fizz", "4", "Buzz"]

def test_fifteen():
    from fizz import fizzbuzz
    r = fizzbuzz(30)
    assert r[14] == "FizzBuzz" and r[29] == "FizzBuzz" and r[9] == "Buzz" and r[8] == "Fizz"
    assert len(r) == 30


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
