import os
import stat

def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)

def test_deploy_executable():
    assert mode("/app/scripts/deploy.sh") == 0o755

def test_token_private():
    assert mode("/app/secrets/token.txt") == 0o600

def test_contents():
    assert open("/app/secrets/token.txt").read() == "s3cr3t-t0ken\n"
    assert open("/app/scripts/deploy.sh").read().startswith("#!/bin/bash")


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
