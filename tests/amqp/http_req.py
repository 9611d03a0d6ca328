#!/usr/bin/python3
"""http_req.py METHOD URL [BODY]: one HTTP request (the tests need no curl).

Prints the status code on the first line and the body after it; exits 0
whatever the status, 1 when the server cannot be reached."""
import sys
import urllib.error
import urllib.request


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    method, url = argv[1], argv[2]
    data = argv[3].encode() if len(argv) > 3 else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        print(f"cannot reach {url}: {e}", file=sys.stderr)
        return 1
    print(status)
    sys.stdout.write(body.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
