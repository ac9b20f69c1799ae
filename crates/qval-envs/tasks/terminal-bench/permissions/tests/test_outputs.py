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
