from pathlib import Path

def test_unique():
    want = sorted(set(Path("/app/words.txt").read_text().splitlines()))
    assert want == ['Apple', 'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi', 'lemon']
    assert Path("/app/unique.txt").read_text().splitlines() == want
