#!/usr/bin/env python3
"""Benchmark: GitHub App credentials with a warm token cache (issue 16).

In one run, against the same upstream (lighttpd + git http-backend with
its static secret, which the local GitHub API stand-in of
tests/integration/ghapp_standin.py hands out as every installation token,
so that both paths cost the upstream the same):

  1. info/refs latency, direct (with a token the stand-in issued) vs
     through gitgate holding only the App key, alternating, after one
     warm-up request; prints medians, p95 and the added latency
     (target: <= +2 ms).
  2. steady load: many fetch and push advertisements over several
     repositories; prints the API call count, which must equal the number
     of (repository, permission set) keys: each token is reused for its
     life less 5 minutes (about 55 minutes for GitHub's hour-long tokens).

    python3 tests/bench/bench_app.py [--gitgate build/gitgate] [--n 200]

Not run by meson test. Exit 1 if a target is missed or a request fails.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness as h  # noqa: E402
import ghapp_standin as gs  # noqa: E402

REPOS = ["acme/widgets", "acme/gadgets", "beta/tools", "beta/docs"]
TARGET_ADDED_MS = 2.0


def timed_get(port, path, auth):
    t0 = time.perf_counter()
    res = h.http_request(port, "GET", path, {"Authorization": auth})
    ms = (time.perf_counter() - t0) * 1000
    if res.status != 200:
        raise SystemExit("GET %s: HTTP %d %r" % (path, res.status,
                                                 res.body[:200]))
    return ms


def pctl(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gitgate", help="gitgate binary")
    ap.add_argument("--n", type=int, default=200,
                    help="info/refs requests each way")
    ap.add_argument("--load", type=int, default=400,
                    help="advertisements in the steady-load phase")
    a = ap.parse_args()
    up = h.Upstream().start()
    app = gs.GitHubAppStandin(fixed_token=up.secret).start()
    app.install("acme", 42)
    app.install("beta", 43)
    for r in REPOS:
        up.create_repo(r)
    g = h.Gitgate(up.url, "unused", binary=a.gitgate)
    key = os.path.join(g.root, "github-app.pem")
    os.makedirs(g.root, exist_ok=True)
    app.write_private_key(key, "pkcs8")
    g.extra_config["upstream"] = {"url": up.url, "github_app": {
        "app_id": app.app_id, "private_key_file": "github-app.pem",
        "api_url": app.url}}
    g.start()
    # the same proxy with the static secret: what the App path adds to it
    gs_static = h.Gitgate(up.url, up.secret, binary=a.gitgate).start()
    ok = True
    try:
        tok = g.mint(repos=REPOS, push=["agent/**"])
        gauth = h.basic_auth("agent", tok)
        path = "/%s.git/info/refs?service=git-upload-pack" % REPOS[0]
        dauth = h.basic_auth(h.UPSTREAM_USER, up.secret)
        sauth = h.basic_auth("agent", gs_static.mint(repos=REPOS))
        timed_get(g.port, path, gauth)  # warm: mints the token once
        timed_get(up.port, path, dauth)
        timed_get(gs_static.port, path, sauth)
        d, p, st = [], [], []
        for _ in range(a.n):
            d.append(timed_get(up.port, path, dauth))
            p.append(timed_get(g.port, path, gauth))
            st.append(timed_get(gs_static.port, path, sauth))
        added = statistics.median(p) - statistics.median(d)
        print("info/refs median (p95), ms: direct %.2f (%.2f); gitgate with "
              "a static secret %.2f (%.2f); gitgate with the App %.2f "
              "(%.2f)" % (statistics.median(d), pctl(d, 0.95),
                          statistics.median(st), pctl(st, 0.95),
                          statistics.median(p), pctl(p, 0.95)))
        print("added by gitgate with the App: %+.2f ms (target <= +%.1f "
              "ms); App over static secret: %+.2f ms" % (
                  added, TARGET_ADDED_MS,
                  statistics.median(p) - statistics.median(st)))
        ok = ok and added <= TARGET_ADDED_MS
        # steady load: fetch and push advertisements of every repository
        before = len(app.calls_to("access_tokens"))
        t0 = time.monotonic()
        for i in range(a.load):
            repo = REPOS[i % len(REPOS)]
            svc = ("git-upload-pack" if (i // len(REPOS)) % 2 == 0
                   else "git-receive-pack")
            timed_get(g.port, "/%s.git/info/refs?service=%s" % (repo, svc),
                      gauth)
        secs = time.monotonic() - t0
        calls = len(app.calls_to("access_tokens")) - before + 1
        inst = len(app.calls_to("installation"))
        keys = len(REPOS) * 2
        print("steady load: %d advertisements in %.1f s, %d repositories x "
              "2 permission sets = %d keys; API calls: %d token, %d "
              "installation (target: one token call per key)" % (
                  a.load, secs, len(REPOS), keys, calls, inst))
        ok = ok and calls == keys and inst == len(REPOS)
    finally:
        gs_static.stop()
        g.stop()
        app.stop()
        up.stop()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
