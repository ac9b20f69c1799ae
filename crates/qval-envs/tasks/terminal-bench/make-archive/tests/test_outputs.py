import tarfile

def test_archive():
    with tarfile.open("/app/logs.tar.gz", "r:gz") as t:
        names = set(t.getnames())
        for i, n in enumerate(["alpha", "beta", "gamma"]):
            assert f"logs/{n}.log" in names
            assert t.extractfile(f"logs/{n}.log").read().decode() == f"{n} line {i}\n" * (3 + i)


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
