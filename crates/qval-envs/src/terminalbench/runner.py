# qval's test runner for tasks without run-tests.sh: every `test_*` function of every
# tests/test_*.py, in file and definition order, pytest-style plain asserts.
import importlib.util
import os
import sys
import traceback

folder = sys.argv[1]
sys.path.insert(0, folder)
ran = failed = 0
for name in sorted(os.listdir(folder)):
    if not (name.startswith("test_") and name.endswith(".py")):
        continue
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(folder, name))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        failed += 1
        print(f"ERROR {name}")
        traceback.print_exc(limit=2)
        continue
    for fname, f in list(vars(module).items()):
        if fname.startswith("test_") and callable(f):
            ran += 1
            try:
                f()
                print(f"PASSED {name}::{fname}")
            except BaseException as e:
                failed += 1
                print(f"FAILED {name}::{fname}: {type(e).__name__}: {e}")
print(f"{ran - failed} passed, {failed} failed")
sys.exit(1 if failed or ran == 0 else 0)
