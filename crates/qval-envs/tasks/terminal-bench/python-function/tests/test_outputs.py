import sys

sys.path.insert(0, "/app")

def test_small():
    from fizz import fizzbuzz
    assert fizzbuzz(5) == ["1", "2", "Fizz", "4", "Buzz"]

def test_fifteen():
    from fizz import fizzbuzz
    r = fizzbuzz(30)
    assert r[14] == "FizzBuzz" and r[29] == "FizzBuzz" and r[9] == "Buzz" and r[8] == "Fizz"
    assert len(r) == 30
