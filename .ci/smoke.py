"""Smoke test of a running Tagrank: log in through the form, open the project list and the demo project.

Usage: python .ci/smoke.py http://127.0.0.1:8000 rater tagrank-rater demo-photos
"""
import http.cookiejar
import re
import sys
import time
import urllib.parse
import urllib.request


def main(base: str, username: str, password: str, slug: str) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    deadline = time.monotonic() + 60
    while True:
        try:
            login_page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"smoke: {base} did not answer within 60 s")
            time.sleep(1)
    assert 'name="username"' in login_page, "smoke: no login form"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    request = urllib.request.Request(f"{base}/accounts/login/", data=form.encode(), headers={"Referer": f"{base}/accounts/login/"})
    projects = opener.open(request, timeout=30).read().decode()
    assert f"/projects/{slug}/" in projects, "smoke: the demo project is not on the project list after login"
    detail = opener.open(f"{base}/projects/{slug}/", timeout=30).read().decode()
    thumbnails = re.findall(r'src="(/media/thumbnails/[^"]+)"', detail)
    assert thumbnails, "smoke: the project page shows no thumbnails"
    image = opener.open(f"{base}{thumbnails[0]}", timeout=30).read()
    assert image[:4] == b"RIFF", "smoke: a thumbnail did not come back as WebP"
    print(f"smoke: OK — logged in as {username}, project page shows {len(thumbnails)} thumbnails")


if __name__ == "__main__":
    main(*sys.argv[1:5])
