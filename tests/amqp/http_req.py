#!/usr/bin/python3
"""http_req.py [-H 'Name: value']... METHOD URL [BODY]: one HTTP request (the
tests need no curl).

A method other than GET and HEAD carries Content-Type: application/json, as
the orchestrator's API wants of every POST, with or without a body; -H
replaces it ('Content-Type:' with nothing after it sends none, which only
holds without a BODY) and adds any other header (Host, ...).

Prints the status code on the first line and the body after it; exits 0
whatever the status, 1 when the server cannot be reached."""
import sys
import urllib.error
import urllib.request


def main(argv):
    args = argv[1:]
    headers = {}
    while len(args) >= 2 and args[0] == "-H":
        name, _, value = args[1].partition(":")
        headers[name.strip()] = value.strip()
        args = args[2:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    method, url = args[0], args[1]
    data = args[2].encode() if len(args) > 2 else None
    if method not in ("GET", "HEAD") and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method)
    for name, value in headers.items():
        if value:
            req.add_header(name, value)
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
