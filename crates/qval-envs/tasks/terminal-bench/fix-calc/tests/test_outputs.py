import subprocess
import sys

sys.path.insert(0, "/app")

def test_cli():
    out = subprocess.run([sys.executable, "/app/calc.py", "3", "4"], capture_output=True, text=True)
    assert out.stdout.strip() == "7"

def test_function():
    import calc
    assert calc.add(-2, 5) == 3
    assert calc.add(10, 0) == 10
