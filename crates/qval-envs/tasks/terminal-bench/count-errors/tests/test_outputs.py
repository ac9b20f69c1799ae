from pathlib import Path

def test_count():
    assert Path("/app/error_count.txt").read_text().strip() == "4"

def test_log_untouched():
    assert len(Path("/app/logs/app.log").read_text().splitlines()) == 40
