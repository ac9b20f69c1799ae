import configparser

def read():
    c = configparser.ConfigParser()
    assert c.read("/app/config.ini") == ["/app/config.ini"]
    return c

def test_server():
    c = read()
    assert c["server"]["port"] == "8080"
    assert c["server"]["debug"] == "false"

def test_rest_unchanged():
    c = read()
    assert c["server"]["host"] == "127.0.0.1"
    assert c["database"]["port"] == "5432"
    assert c["database"]["name"] == "inventory"
    assert c["logging"]["level"] == "info"


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
