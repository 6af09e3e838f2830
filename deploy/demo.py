#!/usr/bin/env python3
"""gitgate quick-start demo (run by deploy/quickstart.sh).

Starts a local demo upstream that stands in for GitHub (lighttpd + git
http-backend with the repository demo/hello, Basic auth with a secret only
gitgate knows), generates keys, mints a token that may fetch and push to
agent/*, starts gitgate, and shows with the real git client:

  1. a clone through gitgate,
  2. a push to agent/demo, which lands upstream,
  3. a push to main, which gitgate refuses (the token allows agent/* only),
  4. a push to agent/ci of a commit that adds a GitHub Actions workflow,
     which the site policy (policy.json) refuses: an agent must not run
     its own code with the repository's secrets.

Then gitgate keeps running in the foreground with its URL and the token
printed, so you can try your own git commands; Ctrl-C stops everything.
With --no-wait it stops right after the demo (exit 0 only if all four
outcomes were as expected).

Everything lives in --workdir (default: demo/ in the source tree, recreated
on each run and kept afterwards so you can look at the audit log, keys and
config). The outcome is also written to WORKDIR/summary.json.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
import harness as h  # noqa: E402

REPO = "demo/hello"
MARKER = ".gitgate-demo"


class Stop(Exception):
    pass


def say(text=""):
    print(text, flush=True)


def step(n, text):
    say()
    say("==> %d. %s" % (n, text))


def show_cmd(args, token):
    shown = " ".join(a if " " not in a else "'%s'" % a for a in args)
    say("    $ " + shown.replace(token, "$TOKEN") if token else
        "    $ " + shown)


def show_output(out, err, token=None):
    for line in (out + err).splitlines():
        if token:
            line = line.replace(token, "$TOKEN")
        say("      | " + line)


def run_git(args, token, cwd=None, home=None):
    show_cmd(["git"] + list(args), token)
    rc, out, err = h.git(*args, cwd=cwd, home=home)
    show_output(out, err, token)
    return rc


def write_summary(workdir, summary):
    # It holds the demo's live token: readable by its owner only.
    tmp = os.path.join(workdir, "summary.json.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(workdir, "summary.json"))


def prepare_workdir(path):
    if os.path.exists(path):
        if os.path.exists(os.path.join(path, MARKER)):
            shutil.rmtree(path)
        elif os.listdir(path):
            sys.exit("demo: %s exists and was not made by this demo; "
                     "choose another --workdir" % path)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("made by deploy/demo.py; removed and recreated on each run\n")


def last_cache(audit_log):
    """The "cache" field of the audit log's last pack request."""
    cache = None
    with open(audit_log) as f:
        for line in f:
            rec = json.loads(line)
            if "cache" in rec:
                cache = rec["cache"]
    return cache


# The demo's site policy: what a push may carry, whatever the token says.
DEMO_POLICY = {
    "protected_paths": [".github/workflows/**", ".github/actions/**"],
    "forbidden_paths": ["**/id_rsa", "**/*.pem", "**/.env"],
    "max_file_size": "10M",
    "secrets": True,
}


def main():
    ap = argparse.ArgumentParser(
        description="gitgate quick-start demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    ap.add_argument("--gitgate", default=None,
                    help="gitgate binary (default: $GITGATE or build/gitgate)")
    ap.add_argument("--workdir", default=os.path.join(SOURCE_ROOT, "demo"),
                    help="directory for everything the demo makes "
                    "(default: %(default)s)")
    ap.add_argument("--port", type=int, default=None,
                    help="gitgate's port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--no-wait", action="store_true",
                    help="stop everything after the demo instead of "
                    "keeping gitgate running")
    args = ap.parse_args()

    binary = os.path.abspath(args.gitgate) if args.gitgate else \
        h.gitgate_binary()
    workdir = os.path.abspath(args.workdir)
    prepare_workdir(workdir)
    home = os.path.join(workdir, "home")
    h._make_home(home)

    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True
        raise Stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    up = gg = None
    summary = {"workdir": workdir, "repo": REPO}
    ok = False
    try:
        # 1. upstream
        up = h.Upstream(root=os.path.join(workdir, "upstream"))
        up.start()
        main_before = up.create_repo(REPO, commits=2, files={
            "README.md": "# hello\n\nA demo repository behind gitgate.\n"})
        summary.update(upstream_url=up.url, upstream_pid=up.proc.pid,
                       upstream_repo=up.repo_path(REPO),
                       main_before=main_before)
        step(1, "Demo upstream (stands in for GitHub): %s" % up.url)
        say("    lighttpd + git http-backend serving %s (2 commits)," % REPO)
        say("    Basic auth x-access-token:<secret>; only gitgate holds the "
            "secret:")
        say("    %s" % os.path.join(workdir, "gitgate", "upstream-token"))

        # 2. keys, config (with a site policy), serve
        gg = h.Gitgate(up.url, up.secret, root=os.path.join(workdir,
                                                             "gitgate"),
                       binary=binary, port=args.port,
                       extra_config={"policy": "policy.json",
                                     "fetch_cache": {"enabled": True}})
        os.makedirs(gg.root, exist_ok=True)
        with open(os.path.join(gg.root, "policy.json"), "w") as f:
            json.dump(DEMO_POLICY, f, indent=2)
            f.write("\n")
        step(2, "Keys: gitgate keygen --out %s" % gg.keys_dir)
        gg.keygen()
        gg.start()
        summary.update(gitgate_url=gg.url, gitgate_pid=gg.proc.pid,
                       config=gg.config_path)
        step(3, "gitgate serve --config %s" % gg.config_path)
        with open(gg.config_path) as f:
            for line in f.read().splitlines():
                say("      | " + line)
        say("    listening on %s (GET /healthz → ok)" % gg.url)

        # 3. token
        token = gg.mint(repo=REPO, push=["agent/*"], ttl="1h",
                        sub="quickstart-demo")
        summary["token"] = token
        step(4, "Token for %s: fetch, and push to agent/* only" % REPO)
        say("    $ gitgate mint --key %s --repo %s --push 'agent/*' "
            "--ttl 1h --sub quickstart-demo" % (gg.signing_key, REPO))
        say("    TOKEN=%s" % token)

        # 4. clone
        url = gg.repo_url(REPO, token)
        clone = os.path.join(workdir, "hello")
        step(5, "Clone through gitgate (the token is the Basic password)")
        rc = run_git(["clone", url, clone], token, home=home)
        clone_ok = rc == 0 and os.path.isdir(os.path.join(clone, ".git"))
        summary.update(clone_rc=rc, clone_ok=clone_ok, clone_dir=clone)
        if clone_ok:
            head = h.git_out("rev-parse", "HEAD", cwd=clone, home=home)
            clone_ok = head == main_before
            summary.update(clone_ok=clone_ok, clone_head=head)
            say("    %s cloned: main at %s" % ("✓" if clone_ok else "✗",
                                              head[:12]))
        else:
            say("    ✗ clone failed (exit %d)" % rc)
        if clone_ok:
            # the same clone again: fetch_cache answers it from gitgate's
            # mirror (only the ref advertisement goes upstream)
            rc = run_git(["clone", "-q", url, clone + "-again"], token,
                         home=home)
            cache = last_cache(gg.audit_log)
            summary.update(cached_clone_rc=rc, cached_clone_cache=cache)
            say("    %s cloned again: served from gitgate's mirror "
                "(audit \"cache\": \"%s\")"
                % ("✓" if rc == 0 and cache == "hit" else "✗", cache))

        # 5. push to agent/demo
        step(6, "Push a commit to agent/demo (allowed by the token)")
        local = None
        if clone_ok:
            local = h.commit_file(clone, "agent-notes.md",
                                  "Written by an agent in the sandbox.\n",
                                  "agent: add notes")
            rc = run_git(["push", "origin", "HEAD:refs/heads/agent/demo"],
                         token, cwd=clone, home=home)
            landed = up.rev_parse(REPO, "agent/demo")
            agent_ok = rc == 0 and landed == local
            summary.update(local_head=local, agent_push_rc=rc,
                           agent_ref=landed, agent_ok=agent_ok)
            say("    %s upstream agent/demo = %s" % (
                "✓" if agent_ok else "✗", landed or "(missing)"))
        else:
            agent_ok = False
            summary["agent_ok"] = False
            say("    (skipped: no clone)")

        # 6. push to main
        step(7, "Push the same commit to main (NOT allowed by the token)")
        if clone_ok:
            rc = run_git(["push", "origin", "HEAD:refs/heads/main"], token,
                         cwd=clone, home=home)
            main_after = up.rev_parse(REPO, "main")
            main_refused = rc != 0 and main_after == main_before
            summary.update(main_push_rc=rc, main_after=main_after,
                           main_refused=main_refused)
            if main_refused:
                say("    ✓ refused: upstream main is still %s" %
                    main_before[:12])
            else:
                say("    ✗ NOT refused: upstream main moved %s → %s "
                    "(push rules not enforced by this gitgate build)" % (
                        main_before[:12], (main_after or "?")[:12]))
        else:
            main_refused = False
            summary["main_refused"] = False
            say("    (skipped: no clone)")

        # 7. push a workflow to agent/ci: the site policy refuses it
        step(8, "Push a commit adding .github/workflows/ci.yml to agent/ci "
             "(refused by the site policy)")
        policy_refused = False
        if clone_ok:
            h.git("checkout", "-q", "-b", "agent-ci", cwd=clone, home=home,
                  check=True)
            os.makedirs(os.path.join(clone, ".github", "workflows"),
                        exist_ok=True)
            h.commit_file(clone, ".github/workflows/ci.yml",
                          "on: push\njobs: {}\n", "agent: add a workflow")
            rc = run_git(["push", "origin", "HEAD:refs/heads/agent/ci"],
                         token, cwd=clone, home=home)
            h.git("checkout", "-q", "-", cwd=clone, home=home, check=True)
            ci_ref = up.rev_parse(REPO, "agent/ci")
            policy_refused = rc != 0 and ci_ref is None
            summary.update(policy_push_rc=rc, policy_refused=policy_refused)
            say("    %s %s" % ("✓" if policy_refused else "✗",
                                "refused: upstream has no agent/ci"
                                if policy_refused else
                                "NOT refused: agent/ci landed upstream"))
        else:
            summary["policy_refused"] = False
            say("    (skipped: no clone)")

        ok = clone_ok and agent_ok and main_refused and policy_refused
        summary["ok"] = ok
        write_summary(workdir, summary)
        say()
        say("==> Demo %s" % ("complete: all outcomes as expected" if ok else
                             "finished with unexpected outcomes (see above)"))

        if args.no_wait:
            return 0 if ok else 1

        say()
        say("gitgate is running at %s — try your own commands:" % gg.url)
        say()
        say("  export TOKEN=%s" % token)
        say("  git clone http://agent:$TOKEN@127.0.0.1:%d/%s.git" %
            (gg.port, REPO))
        say("  git ls-remote http://agent:$TOKEN@127.0.0.1:%d/%s" %
            (gg.port, REPO))
        say("  curl -i -H \"Authorization: Bearer $TOKEN\" "
            "'%s/%s.git/info/refs?service=git-upload-pack'" % (gg.url, REPO))
        say("  %s inspect $TOKEN" % binary)
        say("  %s audit --config %s" % (binary, gg.config_path))
        say("  %s revoke --config %s $TOKEN" % (binary, gg.config_path))
        say()
        say("Press Ctrl-C to stop gitgate and the demo upstream "
            "(files stay in %s)." % workdir)
        while gg.running():
            time.sleep(0.5)
        say("gitgate exited on its own (code %s); its log:" % gg.proc.returncode)
        say(gg.stderr_text()[-3000:])
        return 1
    except Stop:
        if not stopping["flag"]:
            raise
        say()
        say("Stopping gitgate and the demo upstream...")
        return 130 if args.no_wait else 0
    except h.HarnessError as e:
        say()
        say("demo: %s" % e)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = None
        if gg is not None:
            code = gg.stop()
        if up is not None:
            up.stop()
        if code is not None:
            say("gitgate stopped (exit code %s)." % code)
        summary["ok"] = ok
        summary["gitgate_exit"] = code
        write_summary(workdir, summary)


if __name__ == "__main__":
    sys.exit(main())
