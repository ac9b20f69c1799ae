import tarfile

def test_archive():
    with tarfile.open("/app/logs.tar.gz", "r:gz") as t:
        names = set(t.getnames())
        for i, n in enumerate(["alpha", "beta", "gamma"]):
            assert f"logs/{n}.log" in names
            assert t.extractfile(f"logs/{n}.log").read().decode() == f"{n} line {i}\n" * (3 + i)
