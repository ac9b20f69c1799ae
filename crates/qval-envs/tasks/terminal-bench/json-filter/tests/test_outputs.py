from pathlib import Path

def test_active():
    assert Path("/app/active.txt").read_text().split() == ['Ada', 'Dennis', 'Edsger', 'Frances', 'Grace', 'Radia']
