from pathlib import Path

def test_large():
    assert Path("/app/large.txt").read_text().splitlines() == ['a.bin', 'sub/c.log', 'sub/deep/e.dat']
