import configparser

def read():
    c = configparser.ConfigParser()
    assert c.read("/app/config.ini") == ["/app/config.ini"]
    return c

def test_server():
    c = read()
    assert c["server"]["port"] == "8080"
    assert c["server"]["debug"] == "false"

def test_rest_unchanged():
    c = read()
    assert c["server"]["host"] == "127.0.0.1"
    assert c["database"]["port"] == "5432"
    assert c["database"]["name"] == "inventory"
    assert c["logging"]["level"] == "info"
